"""Runs the sandboxed restricted-group plugin from Python (README, "Use from Python"): the soar-host
core, in Rust, behind a thin typed API. Every guarantee (config refusals, the egress rule, the
address policy, redaction, locks, rate limit, cache, audit, trace) is the one `soar-host` keeps.

A `Host` holds threads and connections: create it after forking, in the process that uses it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar, Union

from . import _native
from .errors import Refusal

if TYPE_CHECKING:
    from .trace import Recorder
    from .types import ActionName, Document, Exchange, RestrictionsDocument, RestrictionState

__all__ = ["PLUGIN", "Host", "Refusal", "Report"]

#: The component this package carries; `plugin=` (or `--plugin FILE`) runs another.
PLUGIN = os.path.join(os.path.dirname(__file__), _native.PLUGIN_FILE_NAME)

PathLike = Union[str, "os.PathLike[str]"]
LogCallback = Callable[[str, str], object]
Watch = Union["Recorder", Callable[["Exchange"], object]]


D = TypeVar("D")


class Report(Generic[D]):
    """An action's JSON document (as `soar-host` prints it) and its exit code: 0 success,
    3 partial, 1 failed, 2 refused before anything was sent. `describe()` reports the manifest."""

    __slots__ = ("document", "exit_code")

    def __init__(self, document: D, exit_code: int) -> None:
        self.document = document
        self.exit_code = exit_code

    def __repr__(self) -> str:
        return f"Report(exit_code={self.exit_code}, document={self.document!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Report) and (other.document, other.exit_code) == (self.document, self.exit_code)

    __hash__ = None  # type: ignore[assignment]


class Host:
    """A checked config and a loaded plugin. Thread-safe: actions may run from several threads
    at once (the GIL is released while one runs), each in its own sandbox."""

    __slots__ = ("_native",)

    def __init__(self, native: _native.NativeHost) -> None:
        self._native = native

    @classmethod
    def from_config_file(
        cls,
        path: PathLike,
        plugin: PathLike | None = None,
        log: LogCallback | None = None,
        state_password: str | None = None,
    ) -> Host:
        """Reads the config file (README, "Config file"). Raises `Refusal` (`invalid-config` or
        `plugin-load`) when it or the plugin cannot be used. `log(level, message)` hears the
        host's log lines; by default they go to standard error. `state_password` is the
        PostgreSQL ledger's password, kept in memory (else `state_password_env`, PGPASSWORD or
        ~/.pgpass)."""
        return cls(_native.NativeHost.from_config_file(path, plugin or PLUGIN, log, state_password))

    @classmethod
    def from_config(
        cls,
        mapping: Mapping[str, Any],
        tokens: Mapping[str, str] | None = None,
        base_dir: PathLike | None = None,
        plugin: PathLike | None = None,
        log: LogCallback | None = None,
        state_password: str | None = None,
    ) -> Host:
        """The config as a mapping with the config file's keys. `tokens` maps provider names to
        their bearer tokens, kept in memory (a platform's vault): such a provider has no
        `token_env` or `token_file`. Relative paths resolve against `base_dir` (default: the
        working directory)."""
        native = _native.NativeHost.from_config(
            mapping, dict(tokens or {}), base_dir or os.getcwd(), plugin or PLUGIN, log, state_password
        )
        return cls(native)

    def test_connection(self, idp: str | None = None, correlation_id: str | None = None) -> Report[Document]:
        return self.run("test-connection", idp=idp, correlation_id=correlation_id)

    def add_to_group(
        self,
        users: str | Iterable[str],
        dry_run: bool = False,
        idp: str | None = None,
        correlation_id: str | None = None,
        max_retries: int | None = None,
        timeout_ms: int | None = None,
        duration: str | timedelta | None = None,
        until: str | datetime | None = None,
        reason: str | None = None,
    ) -> Report[Document]:
        """Restricts the users: `duration` (`"24h"`, or a `timedelta`) or `until` (RFC 3339, or
        an aware `datetime`) bounds the restriction, which `reconcile` then lifts; `reason` is kept
        in the ledger."""
        restrict = {"for": duration, "until": until, "reason": reason}
        document, exit_code = self._native.run(
            "add-to-group", users, dry_run, idp, correlation_id, max_retries, timeout_ms, None, restrict
        )
        return Report(document, exit_code)

    def remove_from_group(
        self,
        users: str | Iterable[str],
        dry_run: bool = False,
        idp: str | None = None,
        correlation_id: str | None = None,
        max_retries: int | None = None,
        timeout_ms: int | None = None,
    ) -> Report[Document]:
        return self.run("remove-from-group", users, dry_run, idp, correlation_id, max_retries, timeout_ms)

    def check_membership(
        self, users: str | Iterable[str], idp: str | None = None, correlation_id: str | None = None
    ) -> Report[Document]:
        return self.run("check-membership", users, idp=idp, correlation_id=correlation_id)

    def restrictions(
        self, idp: str | None = None, user: str | None = None, state: RestrictionState = "active"
    ) -> Report[RestrictionsDocument]:
        """Who is restricted, since when, until when and why: the ledger's records."""
        document, exit_code = self._native.restrictions(idp, user, state)
        return Report(document, exit_code)

    def reconcile(
        self,
        idp: str | None = None,
        dry_run: bool = False,
        correlation_id: str | None = None,
        timeout_ms: int | None = None,
        watch: Watch | None = None,
    ) -> Report[Document]:
        """Settles every restriction against the groups' members: lifts what expired, adds back
        what an identity provider undid, reports members nobody recorded."""
        document, exit_code = self._native.reconcile(idp, dry_run, correlation_id, timeout_ms, watch)
        return Report(document, exit_code)

    def describe(self) -> Report[dict[str, Any]]:
        """The plugin's manifest (README, "The manifest")."""
        return Report(self._native.describe(), 0)

    def run(
        self,
        action: ActionName,
        users: str | Iterable[str] = (),
        dry_run: bool = False,
        idp: str | None = None,
        correlation_id: str | None = None,
        max_retries: int | None = None,
        timeout_ms: int | None = None,
        watch: Watch | None = None,
    ) -> Report[Document]:
        """Runs one action. Invalid input returns the exit-2 refusal document and sends nothing;
        it never raises. `watch` hears of every exchange (a `trace.Recorder`, or a callable)."""
        document, exit_code = self._native.run(
            action, users, dry_run, idp, correlation_id, max_retries, timeout_ms, watch
        )
        return Report(document, exit_code)
