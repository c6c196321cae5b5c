"""The Python API: `Host.from_config_file(path)` and one method per action, each returning a
`Report` whose `.document` is the JSON document `soar-host` prints and whose `.exit_code` is its
exit code. Every refusal comes before the first request, and none raises past the API."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable, Optional

from wasmtime import component as wc

from . import config as config_module
from . import cache, files, http, trace
from .config import Config, ConfigError, ProviderConfig
from .runtime import LoadError, PluginFailure, PluginRuntime, Services
from .users import InvalidUser, parse_user_ref, printable

SCHEMA_VERSION = 1
PLUGIN_FILE_NAME = "restricted_group_plugin.wasm"
_LOCK_POLL_S = 0.01
_LEVELS = ("debug", "info", "warn", "error")
_STDERR_LOCK = threading.Lock()


@dataclass
class Report:
    document: dict
    exit_code: int


class Refusal(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


def refusal_report(action: Optional[str], kind: str, message: str) -> Report:
    document = {"schema_version": SCHEMA_VERSION, "action": action, "status": "error",
                "error": {"kind": kind, "message": message}}
    return Report(document, 2)


def exit_code(status: str) -> int:
    return {"success": 0, "partial": 3, "failed": 1}[status]


def default_plugin_path() -> str:
    """The component shipped inside this package, else the one this checkout builds."""
    packaged = os.path.join(os.path.dirname(__file__), PLUGIN_FILE_NAME)
    if os.path.isfile(packaged):
        return packaged
    checkout = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "target", "wasm32-wasip2", "component")
    return os.path.normpath(os.path.join(checkout, PLUGIN_FILE_NAME))


def cache_dir(configured: Optional[str]) -> Optional[str]:
    """The configured folder, else `$XDG_CACHE_HOME/soar-host`, else `~/.cache/soar-host`: the Rust
    host's folder, so both take the same locks and rate slots."""
    if configured:
        return configured
    base = os.environ.get("XDG_CACHE_HOME") or (os.path.join(os.environ["HOME"], ".cache") if os.environ.get("HOME") else None)
    return os.path.join(base, "soar-host") if base else None


def stderr_log(correlation_id: Optional[str]) -> Callable[[str, str], None]:
    """`soar-host [ID] level: message` lines on stderr, debug ones only with SOAR_HOST_LOG=debug."""
    verbose = os.environ.get("SOAR_HOST_LOG", "").lower() == "debug"
    context = f" [{correlation_id}]" if correlation_id else ""

    def write(level: str, message: str) -> None:
        if level != "debug" or verbose:
            # One write per line under a lock: requests of a batch log from several threads, and
            # print() writes the text and its newline apart, so lines would run into each other.
            with _STDERR_LOCK:
                sys.stderr.write(f"soar-host{context} {level}: {message}\n")
                sys.stderr.flush()

    return write


def tenant_key(provider: ProviderConfig) -> str:
    return str(provider.base_url).rstrip("/")


class GroupLocks:
    """One exclusive `flock` per tenant, `<cache>/locks/<sha256(tenant)[:32]>.lock`, taken in key
    order: the Rust host's files, so changes from both hosts to one group never overlap."""

    def __init__(self, folder: Optional[str]):
        self.folder = folder

    def acquire(self, tenants: Iterable[str], deadline: float) -> list[int]:
        if self.folder is None:
            return []
        files.create_private_dir(self.folder)
        held = []
        try:
            for key in sorted({hashlib.sha256(t.encode()).hexdigest()[:32] for t in tenants}):
                fd = os.open(os.path.join(self.folder, f"{key}.lock"), os.O_WRONLY | os.O_CREAT, 0o600)
                held.append(fd)
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise TimeoutError from None
                        time.sleep(min(_LOCK_POLL_S, max(deadline - time.monotonic(), 0)))
        except BaseException:
            release(held)
            raise
        return held


def release(held: list[int]) -> None:
    for fd in held:
        os.close(fd)


class Host:
    """A checked config and a loaded plugin. Thread-safe: each action gets its own store."""

    def __init__(self, config: Config, runtime: PluginRuntime, log: Optional[Callable[[str, str], None]] = None):
        self.config = config
        self.runtime = runtime
        self.log = log or stderr_log(None)
        folder = cache_dir(config.cache_dir)
        self.client = http.HttpClient(config, os.path.join(folder, "rate") if folder else None, self._warn)
        self.locks = GroupLocks(os.path.join(folder, "locks") if folder else None)
        self.in_process = threading.Lock()
        for warning in config.warnings:
            self._warn(warning)

    def _warn(self, message: str) -> None:
        self.log("warn", message)

    @classmethod
    def from_config_file(cls, path: str, plugin: Optional[str] = None, log=None) -> "Host":
        """Raises `Refusal` (kind `invalid-config` or `plugin-load`) when either cannot be used."""
        try:
            config = config_module.load(path)
        except ConfigError as why:
            raise Refusal("invalid-config", str(why)) from None
        log = log or stderr_log(None)
        return cls(config, load_plugin(plugin, config, lambda message: log("warn", message)), log)

    def test_connection(self, idp=None, correlation_id=None) -> Report:
        return self.run("test-connection", [], idp=idp, correlation_id=correlation_id)

    def add_to_group(self, users, dry_run=False, idp=None, correlation_id=None, max_retries=None, timeout_ms=None) -> Report:
        return self.run("add-to-group", users, dry_run, idp, correlation_id, max_retries, timeout_ms)

    def remove_from_group(self, users, dry_run=False, idp=None, correlation_id=None, max_retries=None, timeout_ms=None) -> Report:
        return self.run("remove-from-group", users, dry_run, idp, correlation_id, max_retries, timeout_ms)

    def check_membership(self, users, idp=None, correlation_id=None) -> Report:
        return self.run("check-membership", users, idp=idp, correlation_id=correlation_id)

    def describe(self) -> Report:
        return Report(describe(self.runtime), 0)

    def run(self, action, users, dry_run=False, idp=None, correlation_id=None, max_retries=None, timeout_ms=None,
            watch: Optional[Callable[[trace.Exchange], None]] = None) -> Report:
        """Runs one action; `watch` hears of every exchange (a `trace.Recorder`, say)."""
        try:
            call, providers, deadline_ms = self._prepare(action, users, dry_run, idp, max_retries, timeout_ms)
        except Refusal as refusal:
            return refusal_report(action, refusal.kind, refusal.message)
        return self._execute(action, call, providers, deadline_ms, correlation_id, watch)

    def _prepare(self, action, users, dry_run, idp, max_retries, timeout_ms):
        if isinstance(users, str):
            users = [users]
        if timeout_ms is not None:
            _check_bound(config_module.DEADLINE_MS, "--timeout-ms", timeout_ms)
        if max_retries is not None:
            _check_bound(config_module.MAX_RETRIES, "--max-retries", max_retries)
        try:
            providers = self.config.select(idp)
        except LookupError as why:
            raise Refusal("invalid-input", str(why)) from None
        takes_users = action != "test-connection"
        refs = parse_users(list(users), self.config.max_users_per_action) if takes_users else []
        settings = _record(
            providers=[
                _record(**{
                    "name": p.name, "base-url": str(p.base_url), "restricted-group": p.restricted_group,
                    "restricted-group-id": p.restricted_group_id, "profile": p.profile,
                    "max-retries": p.max_retries if max_retries is None else max_retries,
                })
                for p in providers
            ],
            **{"retry-after-cap-ms": self.config.retry_after_cap_ms},
        )
        if not takes_users:
            return [settings], providers, timeout_ms or self.config.limits.deadline_ms
        request = _record(**{
            "settings": settings, "users": [wc.Variant(r.kind, r.value) for r in refs],
            "dry-run": bool(dry_run) and action in ("add-to-group", "remove-from-group"),
            "protected": [wc.Variant(r.kind, r.value) for r in self.config.protected_users],
        })
        return [request], providers, timeout_ms or self.config.limits.deadline_ms

    def _execute(self, action, call, providers, deadline_ms, correlation_id, watch) -> Report:
        changes = action in ("add-to-group", "remove-from-group")
        dry_run = bool(getattr(call[0], "dry-run", False))
        audit = None
        if changes and self.config.audit_log:
            try:
                audit = files.open_append(self.config.audit_log)
            except (files.FileProblem, OSError) as why:
                return refusal_report(action, "invalid-config",
                                      f"cannot open audit_log {self.config.audit_log} for appending: it {why}; fix the path or its permissions")
        started = time.monotonic()
        deadline = started + deadline_ms / 1000
        policy = http.EgressPolicy(providers, [self.config.proxy.credentials] if self.config.proxy and self.config.proxy.credentials else [])
        held: list[int] = []
        try:
            if changes and not dry_run:
                try:
                    held = self.locks.acquire([tenant_key(p) for p in providers], deadline)
                except TimeoutError:
                    failure = PluginFailure("timeout", f"another soar-host process kept changing this group for the whole deadline of {deadline_ms} ms; nothing was sent: run the action again, or give it a longer --timeout-ms")
                    return self._audited(audit, action, correlation_id, dry_run,
                                         failure_report(action, dry_run, correlation_id, 0, failure, providers, call))
                except OSError as why:
                    self._warn(f"the group lock folder cannot be used ({why.strerror or why}); changes from other soar-host processes are not kept apart: set cache_dir to a writable folder")
            watchers = [watch] if watch else []
            if os.environ.get("SOAR_HOST_LOG", "").lower() == "debug":
                watchers.append(lambda exchange: self.log("debug", printable(trace.request_line(exchange))))
            invocation = _Invocation(self.client, policy, deadline, self.log, max(p.max_concurrent_requests for p in providers), watchers)
            left_ms = max(int((deadline - time.monotonic()) * 1000), 1)
            try:
                result = self.runtime.invoke(action, call, invocation.services(), left_ms, self.config.limits.memory_limit_mib)
                document = _plain(result)
                report = Report({
                    "schema_version": SCHEMA_VERSION, "action": action, "status": document["status"], "dry_run": dry_run,
                    "correlation_id": correlation_id, "http_requests": invocation.requests,
                    "providers": [_provider_document(p) for p in document["providers"]],
                }, exit_code(document["status"]))
            except PluginFailure as failure:
                failure.message = policy.redactor.redact(failure.message)
                report = failure_report(action, dry_run, correlation_id, invocation.requests, failure, providers, call)
        finally:
            release(held)
        return self._audited(audit, action, correlation_id, dry_run, report)

    def _audited(self, audit, action, correlation_id, dry_run, report: Report) -> Report:
        if audit is None:
            return report
        try:
            with audit:
                audit.write(audit_lines(action, correlation_id, dry_run, report.document).encode())
                audit.flush()
                os.fsync(audit.fileno())
        except OSError as why:
            message = f"cannot write audit_log {self.config.audit_log}: {why.strerror or why}"
            self.log("error", message)
            report.document["audit_error"] = message
            report.exit_code = max(report.exit_code, 1)
        return report


class _Invocation:
    """The services one action's store uses: requests counted, run concurrently up to the
    providers' bound, each bounded by the time left."""

    def __init__(self, client, policy, deadline, log, max_concurrent, watchers):
        self.client, self.policy, self.deadline, self.log = client, policy, deadline, log
        self.max_concurrent = max_concurrent
        # Who hears of each exchange (the request log, a trace); exchanges are described only for them.
        self.watchers = watchers
        self.requests = 0
        self.lock = threading.Lock()

    def services(self) -> Services:
        return Services(send_all=self.send_all, log=self.write_log, sleep=self.sleep)

    def write_log(self, level, message) -> None:
        self.log(level if level in _LEVELS else "info", self.policy.redactor.redact(str(message)))

    def sleep(self, ms) -> bool:
        if time.monotonic() + ms / 1000 >= self.deadline:
            return False
        time.sleep(ms / 1000)
        return True

    def send_all(self, pairs) -> list:
        pairs = [tuple(pair) for pair in pairs]
        if len(pairs) <= 1:
            return [self._send(pair) for pair in pairs]
        from concurrent.futures import ThreadPoolExecutor  # 14 ms to import: only when a batch comes

        with ThreadPoolExecutor(max_workers=min(self.max_concurrent, len(pairs))) as pool:
            return list(pool.map(self._send, pairs))

    def _send(self, pair):
        wit_request, purpose = pair
        try:
            body = getattr(wit_request, "body")
            request = http.Request(
                idp=wit_request.idp, method=str(wit_request.method).upper(), url=wit_request.url,
                headers=[tuple(header) for header in wit_request.headers], body=None if body is None else bytes(body),
            )
        except Exception as error:  # a host bug must not trap the guest
            return self._host_failed(error)
        if not self.watchers:
            return self._exchange(request)[0]
        started, clock = datetime.now(timezone.utc), time.monotonic()
        answer, reached = self._exchange(request)
        exchange = trace.Exchange(
            idp=request.idp, method=request.method, url=request.url,
            request_headers=request.headers + [("Authorization", "Bearer [redacted]")],
            request_body=None if request.body is None else self.policy.redactor.redact_bytes(request.body) or request.body,
            started=started, duration_s=time.monotonic() - clock, reached_network=reached,
            doing=purpose.doing if purpose else "", attempt=purpose.attempt if purpose else 1,
            reason=purpose.reason if purpose else None,
        )
        if isinstance(answer, wc.Variant):
            exchange.error = (answer.tag, answer.payload)
        else:
            exchange.status, exchange.headers, exchange.body = answer.status, list(answer.headers), bytes(answer.body)
        for watcher in self.watchers:
            watcher(exchange)
        return answer

    def _exchange(self, request: http.Request):
        """The plugin's answer to one request, and whether the request reached a server."""
        try:
            answer = self.client.send(self.policy, request, self.deadline)
            with self.lock:
                self.requests += 1
            body = self.policy.redactor.redact_bytes(answer.body)
            headers = [(name, self.policy.redactor.redact(value)) for name, value in answer.headers]
            return _record(status=answer.status, headers=headers, body=answer.body if body is None else body), True
        except http.HttpError as error:
            if error.reached_server:
                with self.lock:
                    self.requests += 1
            return wc.Variant(error.kind, self.policy.redactor.redact(error.message)), error.reached_server
        except Exception as error:  # a host bug must not trap the guest
            return self._host_failed(error), False

    def _host_failed(self, error: Exception):
        return wc.Variant("connection-failed", self.policy.redactor.redact(f"the host failed: {type(error).__name__}"))


def load_plugin(path: Optional[str], config: Optional[Config], warn: Optional[Callable[[str], None]] = None) -> PluginRuntime:
    """The component at `path` (else the packaged one), from the compiled cache under `cache_dir` when
    it holds a trusted entry; `warn` hears why the cache is not used."""
    path = path or default_plugin_path()
    try:
        wasm, _ = files.read_regular(path, 64 * 1024 * 1024)
    except (files.FileProblem, OSError) as why:
        raise Refusal("plugin-load", f"cannot read the plugin {path}: {why}; build it with scripts/build-plugin.sh or pass --plugin FILE") from None
    digest = hashlib.sha256(wasm).hexdigest()
    if config and config.plugin_sha256 and config.plugin_sha256.lower() != digest:
        raise Refusal("plugin-load", f"its SHA-256 is {digest}, but plugin_sha256 requires {config.plugin_sha256}; refusing to load it")
    folder = cache_dir(config.cache_dir if config else None)
    try:
        return cache.load(digest, folder, lambda compiled: PluginRuntime(wasm, compiled), PluginRuntime.serialize,
                          warn or (lambda message: stderr_log(None)("warn", message)))
    except LoadError as why:
        raise Refusal("plugin-load", str(why)) from None


def describe(runtime: PluginRuntime) -> dict:
    services = Services(send_all=lambda pairs: [wc.Variant("denied", "describe sends nothing") for _ in pairs],
                        log=lambda level, message: None, sleep=lambda ms: False)
    manifest = _plain(runtime.invoke("describe", [], services, 10_000, 64))
    # Schemas travel as JSON text in WIT; the manifest prints them as JSON, as soar-host does.
    for setting in manifest["settings"]:
        setting["json_schema"] = json.loads(setting["json_schema"])
    for action in manifest["actions"]:
        action["output_schema"] = json.loads(action["output_schema"])
        for parameter in action["parameters"]:
            parameter["json_schema"] = json.loads(parameter["json_schema"])
    return manifest


def parse_users(users: list, max_users: int):
    if not users:
        raise Refusal("invalid-input", "no users given: name at least one with --user USER or --users-file FILE")
    if len(users) > max_users:
        raise Refusal("invalid-input", f"{len(users)} users in one call is more than max_users_per_action ({max_users}); split the call or raise the limit")
    refs = []
    for user in users:
        if not isinstance(user, str):
            raise Refusal("invalid-input", f"a user must be text, not {type(user).__name__}")
        try:
            refs.append(parse_user_ref(user.strip()))
        except InvalidUser as why:
            raise Refusal("invalid-input", str(why)) from None
    return refs


def _check_bound(bound, name, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Refusal("invalid-input", f"{name} must be a whole number")
    try:
        bound.check(name, value)
    except ConfigError as why:
        raise Refusal("invalid-input", str(why)) from None


def _record(**fields) -> wc.Record:
    record = wc.Record()
    for name, value in fields.items():
        setattr(record, name, value)
    return record


def _plain(value):
    """WIT values as JSON: records as objects with snake_case keys, lists as lists."""
    if isinstance(value, wc.Record):
        return {name.replace("-", "_"): _plain(item) for name, item in vars(value).items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, wc.Variant):
        return {value.tag: _plain(value.payload)}
    return value


def _error_document(error: Optional[dict]) -> Optional[dict]:
    """An error as the Rust host prints it: optional fields only when set."""
    if error is None:
        return None
    return {key: value for key, value in error.items() if value is not None or key in ("kind", "message")}


def _provider_document(provider: dict) -> dict:
    return {
        "idp": provider["idp"], "group": provider["group"], "outcome": provider["outcome"],
        "error": _error_document(provider["error"]),
        "users": [{**user, "error": _error_document(user["error"])} for user in provider["users"]],
    }


def failure_report(action, dry_run, correlation_id, http_requests, failure, providers, call) -> Report:
    """A plugin that failed (timeout, memory, panic, trap): every provider carries the failure."""
    error = {"kind": failure.kind, "message": failure.message}
    users = [str(u.payload) if u.tag == "email" else f"{u.tag}:{u.payload}" for u in getattr(call[0], "users", [])]
    document = {
        "schema_version": SCHEMA_VERSION, "action": action, "status": "failed", "dry_run": dry_run,
        "correlation_id": correlation_id, "http_requests": http_requests,
        "providers": [
            {"idp": p.name, "group": {"display_name": p.restricted_group, "id": p.restricted_group_id},
             "outcome": None, "error": error,
             "users": [{"user": u, "user_id": None, "outcome": None, "error": None, "membership_verified": False} for u in users]}
            for p in providers
        ],
        "error": error,
    }
    return Report(document, 1)


def audit_lines(action, correlation_id, dry_run, document) -> str:
    """One JSON line per user and provider, the Rust host's audit format."""
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    lines = []
    for provider in document.get("providers", []):
        provider_error = provider.get("error")
        for user in provider.get("users", []):
            error = user.get("error") or provider_error
            lines.append(json.dumps({
                "time": now, "correlation_id": correlation_id, "action": action, "dry_run": dry_run,
                "provider": provider["idp"], "user": user["user"], "user_id": user["user_id"],
                "group_id": (provider.get("group") or {}).get("id"), "outcome": user["outcome"],
                "error": error["kind"] if error else None, "http_status": error.get("status") if error else None,
            }, separators=(",", ":")))
    return "".join(line + "\n" for line in lines)
