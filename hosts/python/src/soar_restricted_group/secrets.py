"""Bearer tokens and other secrets, with the rules of the Rust host's `secret` module: what a
token may look like (RFC 6750 `b64token`, 8 characters to 16 KiB), and a redactor that scrubs every
form a server or proxy could echo a secret in: exact, percent-encoded (any byte, either case, also
twice over), base64 (standard or URL-safe, any alignment, with or without padding) and inside JSON
strings however their characters are escaped."""

from __future__ import annotations

import base64
import json
import re
from typing import Iterable, Optional

MIN_TOKEN_CHARS = 8
MAX_TOKEN_BYTES = 16 * 1024
# Shorter secrets are scrubbed only as written and percent-encoded: their base64 forms would be too
# short to tell from other text.
MIN_BASE64_SECRET_BYTES = 6
REDACTED = "<redacted>"


class Secret:
    """A secret value; its repr never shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def expose(self) -> str:
        """The value, for the one place that needs it: the Authorization header."""
        return self._value

    def __repr__(self) -> str:
        return "Secret(<redacted>)"

    __str__ = __repr__


def _is_b64token_char(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c in "-._~+/")


def token_problem(token: str) -> Optional[str]:
    """Why a token is refused, never quoting it."""
    if token == "":
        return "the token is empty; put the SCIM bearer token there"
    if len(token.encode()) > MAX_TOKEN_BYTES:
        return f"the token is longer than {MAX_TOKEN_BYTES // 1024} KiB; check that this is the token"
    body = token.rstrip("=")
    for index, char in enumerate(body):
        if _is_b64token_char(char):
            continue
        if char == "\ufeff":
            what = "a byte-order mark"
        elif char in " \t":
            what = "white space"
        elif char in "\n\r":
            what = "a line break (a stray newline?)"
        elif ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F:
            what = "a control character"
        elif char == "=":
            what = "'=' before the end"
        elif not char.isascii():
            what = "a non-ASCII character"
        else:
            what = "a character"
        return (
            f"the token has {what} at position {index + 1}, outside RFC 6750's token characters "
            "(A-Z a-z 0-9 - . _ ~ + / and trailing =); copy the token exactly"
        )
    if len(token) < MIN_TOKEN_CHARS:
        return f"the token is {len(token)} characters long; a SCIM bearer token has at least {MIN_TOKEN_CHARS}"
    return None


def _base64_cores(secret: bytes) -> list[bytes]:
    """The base64 text every encoding of `secret` contains, whatever bytes stand around it: one run
    per alignment, per alphabet."""
    cores = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for offset in range(3):
            shifted = b"\0" * offset + secret
            encoded = encode(shifted).rstrip(b"=")
            skip = (0, 2, 3)[offset]
            drop_last = 1 if len(shifted) % 3 else 0
            if len(encoded) > skip + drop_last:
                cores.add(encoded[skip: len(encoded) - drop_last])
    return sorted(cores)


class Redactor:
    """Replaces every known secret in text and bodies."""

    def __init__(self, secrets: Iterable[Secret] = ()):
        raws = sorted({s.expose().encode() for s in secrets if s.expose()})
        self._secrets = []
        for raw in raws:
            literals = [raw] + (_base64_cores(raw) if len(raw) >= MIN_BASE64_SECRET_BYTES else [])
            self._secrets.append((raw, literals, _percent_pattern(raw)))

    def redact(self, text: str) -> str:
        scrubbed = self.redact_bytes(text.encode("utf-8", "surrogatepass"))
        return text if scrubbed is None else scrubbed.decode("utf-8", "replace")

    def redact_bytes(self, data: bytes) -> Optional[bytes]:
        """`data` with every form of every secret replaced, or None when it holds none. A JSON body
        is also read: a secret spelt with `\\u` escapes in a string is scrubbed from the decoded
        string and the body written again."""
        if not self._secrets:
            return None
        scrubbed = self._scrub(data)
        current = data if scrubbed is None else scrubbed
        if b"\\u" not in current and b"\\/" not in current:
            return scrubbed
        try:
            value = json.loads(current)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return scrubbed
        changed, value = self._scrub_json(value)
        if changed:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
        return scrubbed

    def _scrub_json(self, value):
        if isinstance(value, str):
            scrubbed = self._scrub(value.encode("utf-8", "surrogatepass"))
            return (False, value) if scrubbed is None else (True, scrubbed.decode("utf-8", "replace"))
        if isinstance(value, list):
            results = [self._scrub_json(item) for item in value]
            return any(changed for changed, _ in results), [item for _, item in results]
        if isinstance(value, dict):
            changed_any = False
            out = {}
            for key, item in value.items():
                changed, item = self._scrub_json(item)
                key_changed, key = self._scrub_json(key)
                changed_any = changed_any or changed or key_changed
                out[key] = item
            return changed_any, out
        return False, value

    def _scrub(self, data: bytes) -> Optional[bytes]:
        spans = []
        for _raw, literals, percent in self._secrets:
            for literal in literals:
                start = data.find(literal)
                while start >= 0:
                    spans.append((start, start + len(literal)))
                    start = data.find(literal, start + 1)
            spans.extend(m.span() for m in percent.finditer(data) if b"%" in m.group())
        if not spans:
            return None
        spans.sort()
        out = bytearray()
        written = 0
        index = 0
        while index < len(spans):
            start, end = spans[index]
            while index + 1 < len(spans) and spans[index + 1][0] < end:
                index += 1
                end = max(end, spans[index][1])
            if start >= written:
                out += data[written:start] + REDACTED.encode()
                written = end
            elif end > written:
                written = end
            index += 1
        out += data[written:]
        return bytes(out)


def _percent_pattern(secret: bytes) -> re.Pattern:
    """Each byte of `secret` as itself or percent-encoded (`%XX` either case, `%25XX`, `%2525XX`)."""
    parts = []
    for byte in secret:
        hex_digits = "".join(f"[{d}{d.lower()}]" if d.isalpha() else d for d in f"{byte:02X}")
        encoded = f"%(?:25){{0,2}}{hex_digits}"
        plain = re.escape(bytes([byte]).decode("latin-1")) if byte != 0x25 else None
        parts.append(f"(?:{plain}|{encoded})" if plain else encoded)
    return re.compile("".join(parts).encode("latin-1"))
