"""Compiled components cached under `cache_dir`, by the Rust host's trust rule: compiled code is
read only from a folder, and files, that this user owns and others cannot write, and only when
the entry's keyed MAC (key `hmac.key`, shared with the Rust host) covers the plugin's SHA-256,
this engine's identity and every byte of the entry. Anything else is rebuilt, never loaded.

wasmtime-py's artefacts differ from the Rust host's (another wasmtime), so entries are named
`py-KEY.cwasm` / `py-KEY.tag`, and the MAC is HMAC-SHA256 (the standard library's; it reads the
megabyte entry in 0.7 ms where BLAKE2b takes 1.8)."""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import platform
import secrets
import stat
from typing import Callable, Optional

from wasmtime import _ffi as wasmtime_ffi

from . import files

KEY_FILE = "hmac.key"
MAX_ARTEFACT_BYTES = 1 << 30


@functools.cache
def engine_identity() -> str:
    """What a compiled artefact depends on: the wasmtime build (its native library, by size and
    time: a stat, where reading the package's version costs a tenth of a load), the machine and
    the engine settings the runtime uses. wasmtime also checks its own header when deserializing."""
    library = os.stat(wasmtime_ffi.filename)
    return f"{wasmtime_ffi.filename.name} {library.st_size} {library.st_mtime_ns}\n{platform.machine()}\nepoch_interruption"


class _Untrusted(Exception):
    pass


def _open_trusted(path: str, max_bytes: int) -> tuple[int, bytes]:
    """An open descriptor of a regular file (not a link) that this user owns and others cannot
    write, and its contents; the caller closes the descriptor."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Untrusted(f"{os.path.basename(path)} is not a regular file")
        why = files.trusted(info)
        if why:
            raise _Untrusted(f"{os.path.basename(path)}: {why}")
        return fd, files.read_open(fd, max_bytes)
    except BaseException:
        os.close(fd)
        raise


def _read_trusted(path: str, max_bytes: int) -> bytes:
    fd, data = _open_trusted(path, max_bytes)
    os.close(fd)
    return data


def _key(folder: str) -> bytes:
    path = os.path.join(folder, KEY_FILE)
    try:
        secret = _read_trusted(path, 64)
    except FileNotFoundError:
        secret = secrets.token_bytes(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:  # another process wrote it first
            secret = _read_trusted(path, 64)
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(secret)
                out.flush()
                os.fsync(out.fileno())
    if len(secret) != 32 or files.shared_with_others(os.lstat(path)):
        raise _Untrusted(f"{KEY_FILE} is not a 32-byte owner-only key")
    return secret


def _tag(key: bytes, plugin_sha256: str, identity: str, artefact: bytes) -> str:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    mac.update(f"soar-host python cache v1\n{plugin_sha256}\n{identity}\n".encode())
    mac.update(artefact)
    return mac.hexdigest()


def _write(path: str, contents: bytes) -> None:
    temporary = f"{path}.tmp.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(contents)
    os.replace(temporary, path)


def load(plugin_sha256: str, folder: Optional[str], compile_fresh: Callable[[Optional[bytes]], object],
         serialize: Callable[[object], bytes], warn: Callable[[str], None]):
    """The runtime, built from a trusted cache entry when there is a valid one, else compiled
    (and stored when the folder is trusted). `compile_fresh(None)` compiles; `compile_fresh(entry)`
    deserializes the entry (its bytes, or a path naming them) and raises on one it cannot use."""
    if folder is None:
        return compile_fresh(None)
    try:
        files.create_private_dir(folder)
        why = files.trusted(os.stat(folder))
        if why:
            raise _Untrusted(why)
        key = _key(folder)
    except (OSError, _Untrusted, files.FileProblem) as why:
        warn(f"the cache folder {folder} is not used for compiled code ({why}); the plugin is compiled in memory: "
             "make the folder owner-only (chmod 700) or set cache_dir")
        return compile_fresh(None)
    identity = engine_identity()
    name = "py-" + hashlib.sha256(f"{plugin_sha256}\n{identity}".encode()).hexdigest()
    artefact_path = os.path.join(folder, name + ".cwasm")
    tag_path = os.path.join(folder, name + ".tag")
    fd = None
    try:
        fd, artefact = _open_trusted(artefact_path, MAX_ARTEFACT_BYTES)
        tag = _read_trusted(tag_path, 1024).decode("ascii", "replace")
        if secrets.compare_digest(tag.strip(), _tag(key, plugin_sha256, identity, artefact)):
            # The descriptor names the very file whose bytes were just checked; wasmtime maps it
            # instead of copying the bytes in (0.5 ms instead of 1.4 ms).
            by_descriptor = f"/proc/self/fd/{fd}"
            return compile_fresh(by_descriptor if os.path.exists(by_descriptor) else artefact)
    except (OSError, _Untrusted, files.FileProblem):
        pass
    except Exception:  # an entry wasmtime refuses is rebuilt below
        pass
    finally:
        if fd is not None:
            os.close(fd)
    runtime = compile_fresh(None)
    try:
        compiled = serialize(runtime)
        _write(artefact_path, compiled)
        _write(tag_path, _tag(key, plugin_sha256, identity, compiled).encode())
    except OSError:
        pass  # a cache that cannot be written costs the next run a compile, nothing more
    return runtime
