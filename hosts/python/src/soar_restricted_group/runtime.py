"""The component in wasmtime (PyPI `wasmtime`): loaded once, checked for what it imports and
exports, and run in a fresh store per action with WASI that grants nothing, a memory limit and
a wall-clock deadline. Host functions never raise into the guest: every failure is an answer."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import wasmtime
from wasmtime import component as wc

WIT_PACKAGE = "soar:restricted-group"
WIT_MAJOR = 1
ALLOWED_WASI = (
    "wasi:io/error", "wasi:io/poll", "wasi:io/streams", "wasi:cli/environment", "wasi:cli/exit",
    "wasi:cli/stdin", "wasi:cli/stdout", "wasi:cli/stderr", "wasi:cli/terminal-input",
    "wasi:cli/terminal-output", "wasi:cli/terminal-stdin", "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr", "wasi:random/insecure-seed",
)
HOST_INTERFACES = ("http", "log", "wait", "types")
CAPTURE_BYTES = 64 * 1024
EPOCH_TICK_S = 0.01


class LoadError(Exception):
    """Why a component cannot be run (kind `plugin-load`)."""


class PluginFailure(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


def _unversioned(name: str) -> str:
    return name.split("@", 1)[0]


def import_allowed(name: str) -> bool:
    base, _, version = name.partition("@")
    if base in ALLOWED_WASI:
        return True
    package, _, interface = base.partition("/")
    return package == WIT_PACKAGE and interface in HOST_INTERFACES and version.split(".")[0] == str(WIT_MAJOR)


class _Capture:
    """A bounded sink for the guest's stdout or stderr: the rest is dropped silently."""

    def __init__(self):
        self.data = bytearray()

    def __call__(self, chunk: bytes) -> None:
        room = CAPTURE_BYTES - len(self.data)
        if room > 0:
            self.data += chunk[:room]

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


class _Ticker:
    """Advances the engine's epoch every 10 ms while any call runs, so a store's deadline in
    ticks is wall-clock time."""

    def __init__(self, engine: wasmtime.Engine):
        self.engine = engine
        self.running = 0
        self.lock = threading.Condition()
        threading.Thread(target=self._run, daemon=True, name="soar-epoch").start()

    def _run(self) -> None:
        while True:
            with self.lock:
                while self.running == 0:
                    self.lock.wait()
            time.sleep(EPOCH_TICK_S)
            self.engine.increment_epoch()

    def __enter__(self):
        with self.lock:
            self.running += 1
            self.lock.notify()

    def __exit__(self, *_):
        with self.lock:
            self.running -= 1


@dataclass
class Services:
    """What the host gives one invocation: `send(request, purpose)`, `send_all(list of
    (request, purpose))`, `log(level, message)` and `sleep(ms) -> bool`; requests and answers
    are the `http` module's types, purposes dicts."""

    send_all: Callable[[list], list]
    log: Callable[[str, str], None]
    sleep: Callable[[int], bool]


class PluginRuntime:
    def __init__(self, wasm: bytes, serialized: bytes | str | None = None):
        """Compiles `wasm`, or deserializes `serialized` (the bytes of `serialize()`, or a path to
        them), which must come from a trusted cache."""
        config = wasmtime.Config()
        config.epoch_interruption = True
        self.engine = wasmtime.Engine(config)
        try:
            if isinstance(serialized, str):
                self.component = wc.Component.deserialize_file(self.engine, serialized)
            elif serialized is not None:
                self.component = wc.Component.deserialize(self.engine, serialized)
            else:
                self.component = wc.Component(self.engine, wasm)
        except wasmtime.WasmtimeError as why:
            raise LoadError(f"not a valid component: {str(why).splitlines()[0]}") from None
        self._check()
        self.linker = wc.Linker(self.engine)
        self.linker.add_wasip2()
        self._current = threading.local()
        self._link()
        self.ticker = _Ticker(self.engine)

    def serialize(self) -> bytes:
        return bytes(self.component.serialize())

    def _check(self) -> None:
        kind = self.component.type
        exports = list(kind.exports(self.engine))
        prefix = f"{WIT_PACKAGE}/actions@"
        versions = [name[len(prefix):] for name in exports if name.startswith(prefix)]
        if not versions:
            raise LoadError(f"the component is not a soar plugin: it exports {', '.join(exports) or 'nothing'}")
        if versions[0].split(".")[0] != str(WIT_MAJOR):
            raise LoadError(f"the component was built for {WIT_PACKAGE}@{versions[0]}; this host runs version {WIT_MAJOR}.x")
        self.actions_name = f"{prefix}{versions[0]}"
        self.imports = list(kind.imports(self.engine))
        refused = [name for name in self.imports if not import_allowed(name)]
        if refused:
            raise LoadError(
                f"the component imports what this host does not give: {', '.join(refused)}; a plugin may import "
                f"only {WIT_PACKAGE}/{{http,log,wait}} and {', '.join(ALLOWED_WASI)}"
            )

    def _link(self) -> None:
        current = self._current

        def services() -> Services:
            return current.services

        with self.linker.root() as root:
            for name in self.imports:
                if not name.startswith(WIT_PACKAGE + "/"):
                    continue
                interface = _unversioned(name).split("/")[1]
                with root.add_instance(name) as instance:
                    if interface == "http":
                        instance.add_func("send", lambda store, request: services().send_all([(request, None)])[0])
                        instance.add_func("send-all", lambda store, requests: services().send_all(requests))
                    elif interface == "log":
                        instance.add_func("write", lambda store, level, message: services().log(level, message))
                    elif interface == "wait":
                        instance.add_func("sleep", lambda store, ms: services().sleep(ms))

    def invoke(self, function: str, args: list, services: Services, deadline_ms: int, memory_limit_mib: int) -> Any:
        """Runs one export in a fresh store; raises `PluginFailure` for a plugin that failed."""
        store = wasmtime.Store(self.engine)
        wasi = wasmtime.WasiConfig()
        stdout, stderr = _Capture(), _Capture()
        wasi.stdout_custom = stdout
        wasi.stderr_custom = stderr
        store.set_wasi(wasi)
        store.set_limits(memory_size=memory_limit_mib * 1024 * 1024, table_elements=100_000)
        store.set_epoch_deadline(int(deadline_ms / 1000 / EPOCH_TICK_S) + 1)
        self._current.services = services
        started = time.monotonic()
        try:
            with self.ticker:
                instance = self.linker.instantiate(store, self.component)
                actions = instance.get_export_index(store, self.actions_name)
                func = instance.get_func(store, instance.get_export_index(store, function, actions))
                return func(store, *args)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as error:
            raise _classify(error, stderr.text(), deadline_ms, time.monotonic() - started) from None
        finally:
            self._current.services = None


def _classify(error: Exception, stderr: str, deadline_ms: int, took_s: float) -> PluginFailure:
    text = str(error)
    if "interrupt" in text or took_s * 1000 >= deadline_ms:
        return PluginFailure("plugin-timeout", f"the plugin ran past the action's deadline of {deadline_ms} ms and was stopped")
    if "memory allocation of" in stderr:
        return PluginFailure("plugin-out-of-memory", "the plugin needed more memory than memory_limit_mib allows and was stopped")
    if "panicked at" in stderr:
        rest = stderr[stderr.index("panicked at") + len("panicked at"):]
        location, _, message = rest.partition("\n")
        message = " ".join(line for line in message.splitlines() if not line.startswith("note:"))
        return PluginFailure("plugin-panicked", f"the plugin panicked: {message.strip()} (at {location.strip().rstrip(':')})"[:500])
    return PluginFailure("plugin-trapped", f"the plugin trapped: {text.splitlines()[0] if text else 'unknown trap'}"[:500])
