from collections.abc import Callable, Mapping
from os import PathLike
from typing import Any

from .types import Document, Exchange, RestrictionsDocument

HOST_VERSION: str
PLUGIN_FILE_NAME: str

_Path = str | PathLike[str]
_Log = Callable[[str, str], object]

class Recorder:
    def __init__(self) -> None: ...
    def har(self) -> dict[str, Any]: ...

class NativeHost:
    @staticmethod
    def from_config_file(
        path: _Path, plugin: _Path, log: _Log | None = None, state_password: str | None = None
    ) -> NativeHost: ...
    @staticmethod
    def from_config(
        mapping: Mapping[str, Any],
        tokens: Mapping[str, str],
        base_dir: _Path,
        plugin: _Path,
        log: _Log | None = None,
        state_password: str | None = None,
    ) -> NativeHost: ...
    def run(
        self,
        action: str,
        users: object,
        dry_run: object,
        idp: object,
        correlation_id: object,
        max_retries: object,
        timeout_ms: object,
        watch: Recorder | Callable[[Exchange], object] | None = None,
        restrict: Mapping[str, object] | None = None,
    ) -> tuple[Document, int]: ...
    def restrictions(
        self, idp: str | None = None, user: str | None = None, state: str | None = None
    ) -> tuple[RestrictionsDocument, int]: ...
    def reconcile(
        self,
        idp: str | None = None,
        dry_run: bool = False,
        correlation_id: str | None = None,
        timeout_ms: int | None = None,
        watch: Recorder | Callable[[Exchange], object] | None = None,
    ) -> tuple[Document, int]: ...
    def describe(self) -> dict[str, Any]: ...

def run_cli(args: list[str], default_plugin: _Path) -> int: ...
