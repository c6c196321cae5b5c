"""The URLs of SCIM endpoints, with the rules of the Rust host's `endpoint` module: the raw
text is checked first (the WHATWG parser would resolve `..` and `%2e%2e`, read `\\` as `/` and drop
tabs), then parsed into the WHATWG form for the http(s) URLs these rules leave (lower-case scheme
and host, default port dropped, IPv4 numbers normalised, an empty path as `/`). A request URL
must already be in that form: the client sends exactly the URL that was checked."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from typing import Optional
from urllib.parse import unquote_to_bytes

DEFAULT_PORTS = {"http": 80, "https": 443}
# WHATWG: the characters that percent-encode in a path, and in a special URL's query.
_PATH_ENCODED = set('"<>`{}')
_QUERY_ENCODED = set("\"<>'")
_FORBIDDEN_HOST = set(" #%/:<>?@[\\]^|")


class UrlError(Exception):
    """Why a URL is refused; the text completes "the URL ...". """


@dataclass(frozen=True)
class Url:
    scheme: str
    host: str
    """A domain (lower case), dotted IPv4, or IPv6 in brackets."""
    port: Optional[int]
    """None for the scheme's default port."""
    path: str
    query: Optional[str]

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        query = "" if self.query is None else f"?{self.query}"
        return f"{self.scheme}://{self.host}{port}{self.path}{query}"

    @property
    def port_or_default(self) -> int:
        return self.port if self.port is not None else DEFAULT_PORTS[self.scheme]

    @property
    def host_name(self) -> str:
        """The host without IPv6 brackets: what name resolution and TLS see."""
        return self.host[1:-1] if self.host.startswith("[") else self.host

    def ip(self) -> Optional[ipaddress._BaseAddress]:
        try:
            return ipaddress.ip_address(self.host_name)
        except ValueError:
            return None


def _is_control(char: str) -> bool:
    return unicodedata.category(char) == "Cc"


def parse(text: str) -> Url:
    """An absolute http(s) URL, refusing what the raw text hides."""
    for char in text:
        if _is_control(char) or char.isspace() or not char.isascii() or char == "\\":
            raise UrlError(f"contains {char!r}; percent-encode it")
    if "://" in text:
        rest = text.split("://", 1)[1]
        if rest == "" or rest[0] in "/?#":
            raise UrlError("has no host")
    if re.search(r"%(?![0-9A-Fa-f]{2})", text):
        raise UrlError("has a '%' that is not followed by two hex digits")
    scheme_match = re.match(r"([A-Za-z][A-Za-z0-9+.\-]*):", text)
    if not scheme_match:
        raise UrlError("is not an absolute URL (relative URL without a base)")
    scheme = scheme_match.group(1).lower()
    if scheme not in DEFAULT_PORTS:
        raise UrlError(f"has scheme '{scheme}'; only https (or http to loopback) is allowed")
    rest = text[scheme_match.end():].lstrip("/")
    authority_end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, remainder = rest[:authority_end], rest[authority_end:]
    if "#" in remainder:
        raise UrlError("has a fragment (#...); remove it")
    if "@" in authority:
        raise UrlError("carries user info (user@host); put credentials in token_env or token_file instead")
    host, port = _split_port(authority)
    host = _parse_host(host)
    path, _, query_text = remainder.partition("?")
    query = query_text if "?" in remainder else None
    if not path:
        path = "/"
    problem = path_problem(_raw_path(text))
    if problem:
        raise UrlError(f"has {problem} in its path")
    return Url(scheme, host, None if port == DEFAULT_PORTS[scheme] else port, path, query)


def _split_port(authority: str) -> tuple[str, Optional[int]]:
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise UrlError("is not an absolute URL (invalid IPv6 address)")
        host, after = authority[: end + 1], authority[end + 1:]
        if after and not after.startswith(":"):
            raise UrlError("is not an absolute URL (invalid IPv6 address)")
        port_text = after[1:] if after else ""
    else:
        host, _, port_text = authority.partition(":")
    if port_text == "":
        return host, None
    if not port_text.isdigit() or int(port_text) > 65535:
        raise UrlError("is not an absolute URL (invalid port number)")
    port = int(port_text)
    if port == 0:
        raise UrlError("has port 0")
    return host, port


def _parse_host(host: str) -> str:
    if host == "":
        raise UrlError("has no host")
    if host.startswith("["):
        try:
            address = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise UrlError("is not an absolute URL (invalid IPv6 address)") from None
        return f"[{address.compressed}]"
    host = unquote_to_bytes(host).decode("utf-8", "replace").lower()
    if any(c in _FORBIDDEN_HOST or _is_control(c) for c in host):
        raise UrlError("is not an absolute URL (invalid international domain name)")
    last = host.rstrip(".").rsplit(".", 1)[-1] if host.rstrip(".") else ""
    if last and (last.isdigit() or re.fullmatch(r"0[xX][0-9A-Fa-f]*", last)):
        return _ipv4(host)
    return host


def _ipv4(host: str) -> str:
    """The WHATWG IPv4 parser: 1 to 4 parts, decimal, octal (0...) or hex (0x...)."""
    parts = host.split(".")
    if parts[-1] == "":
        parts = parts[:-1]
    if not 1 <= len(parts) <= 4:
        raise UrlError("is not an absolute URL (invalid IPv4 address)")
    numbers = []
    for part in parts:
        try:
            if re.fullmatch(r"0[xX][0-9A-Fa-f]*", part):
                numbers.append(int(part[2:] or "0", 16))
            elif re.fullmatch(r"0[0-7]+", part):
                numbers.append(int(part, 8))
            elif re.fullmatch(r"[0-9]+", part):
                numbers.append(int(part, 10))
            else:
                raise ValueError(part)
        except ValueError:
            raise UrlError("is not an absolute URL (invalid IPv4 address)") from None
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise UrlError("is not an absolute URL (invalid IPv4 address)")
    value = numbers[-1] + sum(n << (8 * (3 - i)) for i, n in enumerate(numbers[:-1]))
    return str(ipaddress.IPv4Address(value))


def parse_exact(text: str) -> Url:
    """A request URL, which must be written exactly as it will be sent."""
    url = parse(text)
    serialised = str(url)
    if any(c in _PATH_ENCODED for c in url.path) or any(c in _QUERY_ENCODED for c in url.query or ""):
        serialised = _encode_like_whatwg(url)
    if serialised != text:
        raise UrlError(f"is not written as it would be sent ({serialised}); write it in that form")
    return url


def _encode_like_whatwg(url: Url) -> str:
    encode = lambda text, chars: "".join(f"%{ord(c):02X}" if c in chars else c for c in text)  # noqa: E731
    query = None if url.query is None else encode(url.query, _QUERY_ENCODED)
    return str(Url(url.scheme, url.host, url.port, encode(url.path, _PATH_ENCODED), query))


def _raw_path(text: str) -> str:
    after_scheme = text.split("://", 1)[1] if "://" in text else text
    starts = [i for i in (after_scheme.find(c) for c in "/\\?#") if i >= 0]
    path = after_scheme[min(starts):] if starts else ""
    ends = [i for i in (path.find(c) for c in "?#") if i >= 0]
    return path[: min(ends)] if ends else path


def path_problem(path: str) -> Optional[str]:
    """What in a raw path some server could read as another path."""
    if "\\" in path:
        return "a backslash, which some servers read as '/'"
    if ";" in path:
        return "a ';' parameter, which some servers strip ('..;/')"
    if any(segment in (".", "..") for segment in path.split("/")):
        return "'.' or '..' segments"
    layer = path.encode()
    separators = lambda data: sum(data.count(c) for c in (b".", b"/", b"\\"))  # noqa: E731
    for _ in range(4):
        decoded = unquote_to_bytes(layer)
        if decoded == layer:
            return None
        if separators(decoded) > separators(layer) or _has_overlong_separator(decoded):
            return "a percent-encoded '.', '/' or '\\' (in any encoding)"
        layer = decoded
    return "a percent-encoded '.', '/' or '\\' (in any encoding)"


def _has_overlong_separator(data: bytes) -> bool:
    for start, lead in enumerate(data):
        if 0xC0 <= lead <= 0xDF:
            length = 2
        elif 0xE0 <= lead <= 0xEF:
            length = 3
        elif 0xF0 <= lead <= 0xF7:
            length = 4
        else:
            continue
        continuation = data[start + 1: start + length]
        if len(continuation) != length - 1 or not all(0x80 <= b < 0xC0 for b in continuation):
            continue
        code = lead & (0x7F >> length)
        for byte in continuation:
            code = (code << 6) | (byte & 0x3F)
        if code in (0x2E, 0x2F, 0x5C):
            return True
    return False


def names_loopback(url: Url) -> bool:
    """`localhost`, `*.localhost`, 127.0.0.0/8 or ::1, as written."""
    ip = url.ip()
    if ip is not None:
        return ip.is_loopback
    return url.host == "localhost" or url.host.endswith(".localhost")


def is_under(base: Url, url: Url) -> bool:
    """Same scheme, host and port, and a path inside the base path on a segment boundary."""
    if (base.scheme, base.host, base.port_or_default) != (url.scheme, url.host, url.port_or_default):
        return False
    base_path = base.path.rstrip("/")
    if not url.path.startswith(base_path):
        return False
    rest = url.path[len(base_path):]
    return rest == "" or rest.startswith("/")


def origin(url: Url) -> str:
    """`scheme://host:port`, the port always written: the key of per-origin rules."""
    return f"{url.scheme}://{url.host}:{url.port_or_default}"
