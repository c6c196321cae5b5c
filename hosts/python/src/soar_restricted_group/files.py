"""Reading the files a config names, and opening the files the host writes, without ever
blocking or being led elsewhere: the rules of the Rust host's `files` module. A file read must be
a regular file (a symbolic link to one is fine: secrets are mounted that way), read with a size
cap; a FIFO, a device or a folder is refused before a byte is read. A file written is created
owner-only and never through a symbolic link."""

from __future__ import annotations

import os
import stat


class FileProblem(Exception):
    """Why a file cannot be used; the text completes "<path> ..."."""


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def _open_checked(path: str, flags: int, mode: int = 0o600) -> int:
    try:
        fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as error:
        raise FileProblem(error.strerror or str(error)) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise FileProblem(f"is {_kind(info.st_mode)}, not a regular file")
    return fd


def read_open(fd: int, max_bytes: int) -> bytes:
    """What an open file holds from where it stands, at most `max_bytes`."""
    chunks = []
    total = 0
    while total <= max_bytes:
        chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > max_bytes:
        raise FileProblem(f"is larger than {max_bytes} bytes")
    return b"".join(chunks)


def read_regular(path: str, max_bytes: int) -> tuple[bytes, os.stat_result]:
    """The contents of a regular file (or what a link names), at most `max_bytes`."""
    fd = _open_checked(path, os.O_RDONLY)
    try:
        info = os.fstat(fd)
        return read_open(fd, max_bytes), info
    finally:
        os.close(fd)


def _refuse_links_and_specials(path: str) -> None:
    try:
        existing = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as error:
        raise FileProblem(error.strerror or str(error)) from None
    if stat.S_ISLNK(existing.st_mode):
        raise FileProblem("is a symbolic link; name the file itself")
    if not stat.S_ISREG(existing.st_mode):
        raise FileProblem(f"is {_kind(existing.st_mode)}, not a regular file")


def open_append(path: str):
    """A file to append to: created owner-only, never through a symbolic link."""
    _refuse_links_and_specials(path)
    fd = _open_checked(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW)
    return os.fdopen(fd, "ab")


def open_to_replace(path: str):
    """A file to write over later (a trace), with the rules of `open_append`; what it holds stays
    until then."""
    _refuse_links_and_specials(path)
    fd = _open_checked(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW)
    return os.fdopen(fd, "r+b")


def shared_with_others(info: os.stat_result) -> bool:
    """Whether others than the owner may read or write a file."""
    return info.st_mode & 0o077 != 0


def trusted(info: os.stat_result) -> str | None:
    """Why a folder or file may not be trusted with compiled code (None when it may): it must
    belong to this user and not be writable by group or others."""
    me = os.geteuid()
    if info.st_uid != me:
        return f"it belongs to user {info.st_uid}, not to this user ({me})"
    if info.st_mode & 0o022:
        return f"group or others may write it (mode {info.st_mode & 0o777:o})"
    return None


def create_private_dir(path: str) -> None:
    """A folder (and its parents) created owner-only; an existing one is left as it is."""
    os.makedirs(path, mode=0o700, exist_ok=True)
