"""How a caller names a user (`alice@corp.example`, `id:SCIM_ID`, `external:EXTERNAL_ID`), with
the checks of the shared `soar-types` crate: bad input is refused before anything is sent."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Optional

MAX_EMAIL_BYTES = 254
MAX_LOCAL_PART_BYTES = 64
MAX_ID_BYTES = 1024
_LOCAL_SPECIALS = "!#$%&'*+-/=?^_`{|}~."


class InvalidUser(ValueError):
    """Why a user is refused: one line that says what is wrong and what to do."""


@dataclass(frozen=True)
class UserRef:
    kind: str
    """`email`, `id` or `external` (the WIT `user-ref` cases)."""
    value: str

    def __str__(self) -> str:
        return self.value if self.kind == "email" else f"{self.kind}:{self.value}"

    def names(self, other: "UserRef") -> bool:
        """Whether both name the same user as written (emails compare case-insensitively)."""
        if self.kind != other.kind:
            return False
        if self.kind == "email":
            return names_match(self.value, other.value)
        return self.value == other.value


def names_match(a: str, b: str) -> bool:
    """userName and displayName compare ASCII-case-insensitively, as the plugin compares them."""
    return _ascii_lower(a) == _ascii_lower(b)


def _ascii_lower(text: str) -> str:
    return "".join(c.lower() if "A" <= c <= "Z" else c for c in text)


def _is_control(char: str) -> bool:
    return unicodedata.category(char) == "Cc"


_BIDI = {"\u061c", "\u200e", "\u200f", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))}


def printable(text: str) -> str:
    """Text safe to show: control and bidirectional-formatting characters escaped as `\\u{..}`."""
    return "".join(f"\\u{{{ord(c):x}}}" if _is_control(c) or c in _BIDI else c for c in text)


def parse_user_ref(text: str) -> UserRef:
    if text.startswith("id:"):
        _check_opaque("id", text[3:])
        return UserRef("id", text[3:])
    if text.startswith("external:"):
        _check_opaque("external", text[9:])
        return UserRef("external", text[9:])
    _check_email(text)
    return UserRef("email", text)


def id_problem(value: str) -> Optional[str]:
    """Why a SCIM id cannot stand as one segment of a URL path."""
    if value == "":
        return "is empty"
    if value in (".", ".."):
        return "is a dot segment ('.' or '..')"
    if "/" in value or "\\" in value:
        return "contains a slash or a backslash"
    if "%" in value:
        return "contains '%'"
    if any(_is_control(c) for c in value):
        return "contains a control character"
    return None


def _check_opaque(prefix: str, value: str) -> None:
    if value == "":
        raise InvalidUser(f"user '{prefix}:' names no {prefix}: write {prefix}:VALUE")
    if len(value.encode()) > MAX_ID_BYTES:
        raise InvalidUser(
            f"user '{prefix}:...' is {len(value.encode())} bytes long; SCIM ids here are at most {MAX_ID_BYTES}"
        )
    if any(_is_control(c) for c in value):
        raise InvalidUser(f"user '{prefix}:{printable(value)}' contains a control character; remove it")
    problem = id_problem(value) if prefix == "id" else None
    if problem:
        raise InvalidUser(f"user 'id:{value}' {problem}; SCIM ids never do: check the id")


def _check_email(email: str) -> None:
    shown = printable(email)
    if email == "":
        raise InvalidUser("empty user: give an email address, id:SCIM_ID or external:EXTERNAL_ID")
    if len(email.encode()) > MAX_EMAIL_BYTES:
        raise InvalidUser(
            f"user '{shown[:40]}...' is {len(email.encode())} bytes long; an email address has at most {MAX_EMAIL_BYTES}"
        )
    if any(_is_control(c) for c in email):
        raise InvalidUser(f"user '{shown}' contains a control character; remove it")
    at = email.rfind("@")
    if at < 0:
        raise InvalidUser(
            f"user '{shown}' is not an email address (no '@'); give user@domain, id:SCIM_ID or external:EXTERNAL_ID"
        )
    for check, part in ((_check_local_part, email[:at]), (_check_domain, email[at + 1:])):
        why = check(part)
        if why:
            raise InvalidUser(f"user '{shown}' is not a valid email address: {why}")


def _check_local_part(local: str) -> Optional[str]:
    if local == "":
        return "nothing before '@'"
    if len(local.encode()) > MAX_LOCAL_PART_BYTES:
        return f"the part before '@' is longer than {MAX_LOCAL_PART_BYTES} bytes"
    if len(local) >= 2 and local.startswith('"') and local.endswith('"'):
        chars = iter(local[1:-1])
        for char in chars:
            if char == "\\" and next(chars, None) is None:
                return "a quoted local part ends with a lone '\\'"
            if char == '"':
                return "a '\"' inside a quoted local part must be escaped as '\\\"'"
        return None
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return "the part before '@' starts or ends with a dot, or has two dots in a row"
    for char in local:
        if not ((char.isascii() and char.isalnum()) or char in _LOCAL_SPECIALS or not char.isascii()):
            return f"'{printable(char)}' is not allowed before '@' unless the local part is quoted"
    return None


def _check_domain(domain: str) -> Optional[str]:
    if domain == "":
        return "nothing after '@'"
    labels = domain.split(".")
    if len(labels) < 2:
        return f"the domain '{domain}' has no dot"
    for label in labels:
        if label == "":
            return f"the domain '{domain}' has an empty label"
        if len(label.encode()) > 63:
            return f"a label of the domain '{domain}' is longer than 63 bytes"
        if label.startswith("-") or label.endswith("-"):
            return f"a label of the domain '{domain}' starts or ends with '-'"
        for char in label:
            if not ((char.isascii() and char.isalnum()) or char == "-" or not char.isascii()):
                return f"'{printable(char)}' is not allowed in the domain"
    return None
