"""Outbound HTTP for the plugin, with the Rust host's guarantees: the egress rule before
anything is sent, the token added only here, every resolved address checked before connecting,
no redirects followed, bodies capped, every request bounded by the time left, and one rate-limit
slot per origin shared with every other host process through files under `cache_dir/rate`."""

from __future__ import annotations

import fcntl
import functools
import hashlib
import ipaddress
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from . import urls
from .config import Config, ProviderConfig
from .secrets import Redactor, Secret

# Headers only the host sets (the Rust host's list, policy/src/egress.rs).
FORBIDDEN_HEADERS = {
    "authorization", "host", "content-length", "transfer-encoding", "cookie", "proxy-authorization",
    "connection", "upgrade", "expect", "te", "trailer", "keep-alive", "proxy-connection", "http2-settings",
}
_CHUNK = 64 * 1024


class HttpError(Exception):
    """A failed exchange; `kind` is the WIT `http-error` case."""

    def __init__(self, kind: str, message: str, reached_server: bool = False):
        super().__init__(message)
        self.kind = kind
        self.message = message
        # Whether the request got as far as a server: only then is it counted as sent.
        self.reached_server = reached_server


@dataclass
class Request:
    idp: str
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: Optional[bytes]


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Authorized:
    url: urls.Url
    provider: ProviderConfig


class EgressPolicy:
    """Which requests may leave: the provider must be configured, the URL under its base URL,
    and no header the host owns set by the plugin."""

    def __init__(self, providers: list[ProviderConfig], other_secrets: list[Secret] = ()):
        self.providers = {p.name: p for p in providers}
        self.redactor = Redactor([p.token for p in providers] + list(other_secrets))

    def authorize(self, idp: str, url_text: str, headers: list[tuple[str, str]]) -> Authorized:
        provider = self.providers.get(idp)
        if provider is None:
            raise HttpError("denied", f'no identity provider named "{idp}" is configured')
        try:
            url = urls.parse_exact(url_text)
        except urls.UrlError as why:
            raise HttpError("denied", f"the URL {why}") from None
        if not urls.is_under(provider.base_url, url):
            raise HttpError("denied", f'{url} is not under the base URL of "{idp}" ({provider.base_url})')
        for name, value in headers:
            if name.lower() in FORBIDDEN_HEADERS:
                raise HttpError("denied", f"the plugin may not set the {name} header")
            valid_name = name != "" and all(33 <= ord(c) < 127 and c != ":" for c in name)
            if not valid_name or any(_is_control(c) and c != "\t" for c in value):
                raise HttpError("denied", f"the header {name!r} is malformed")
        return Authorized(url, provider)


def _is_control(char: str) -> bool:
    return ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0


def address_refusal(ip: ipaddress._BaseAddress, allow_loopback: bool, allow_private: bool) -> Optional[str]:
    """Why an address may not be connected to (the Rust host's rule, http_client.rs)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified or ip.is_multicast or ip.is_link_local:
        return "unspecified, multicast or link-local (cloud metadata included)"
    if isinstance(ip, ipaddress.IPv4Address) and ip == ipaddress.IPv4Address("255.255.255.255"):
        return "broadcast"
    if ip.is_loopback:
        return None if allow_loopback else "loopback, but the base URL is not"
    shared = isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.IPv4Network("100.64.0.0/10")
    if isinstance(ip, ipaddress.IPv6Address) and ip in ipaddress.IPv6Network("fc00::/7") and not allow_private:
        return "unique local (private) network; set allow_private_network for an on-premises SCIM gateway"
    if isinstance(ip, ipaddress.IPv4Address) and (ip.is_private or shared) and not allow_private:
        return "private network; set allow_private_network for an on-premises SCIM gateway"
    return None


class RateLimiter:
    """One slot per origin, evenly spaced: the next free slot, in nanoseconds since the epoch, is
    the decimal content of `<dir>/<sha256(origin)[:32]>`, read and written under `flock`, the same
    file the Rust host uses. Without a usable folder, slots are kept within this process."""

    def __init__(self, folder: Optional[str], warn: Callable[[str], None]):
        self.folder = folder
        self.warn = warn
        self.warned = False
        self.in_process: dict[str, int] = {}
        self.lock = threading.Lock()

    def reserve(self, origin: str, rate: float, budget_s: float) -> float:
        """Seconds to wait for this origin's next slot; raises `HttpError("timeout")` when the
        wait is longer than the budget (nothing is then reserved)."""
        interval = int(1e9 / rate)
        if self.folder is not None:
            try:
                return self._reserve_in_file(origin, interval, budget_s)
            except OSError as why:
                if not self.warned:
                    self.warned = True
                    self.warn(
                        f"the rate-limit folder {self.folder} cannot be used ({why.strerror or why}); requests to "
                        f"{origin} are spaced within this process only: set cache_dir to a writable folder"
                    )
        with self.lock:
            wait, following = _reserve(self.in_process.get(origin, 0), time.time_ns(), interval, budget_s)
            self.in_process[origin] = following
            return wait

    def _reserve_in_file(self, origin: str, interval: int, budget_s: float) -> float:
        from .files import create_private_dir

        create_private_dir(self.folder)
        path = os.path.join(self.folder, hashlib.sha256(origin.encode()).hexdigest()[:32])
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
        try:
            if not os.path.stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError("the slot file is not a regular file")
            fcntl.flock(fd, fcntl.LOCK_EX)
            text = os.read(fd, 64).decode("ascii", "replace").strip()
            next_slot = int(text) if text.isdigit() else 0
            wait, following = _reserve(next_slot, time.time_ns(), interval, budget_s)
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(following).encode(), 0)
            return wait
        finally:
            os.close(fd)


def _reserve(next_slot: int, now: int, interval: int, budget_s: float) -> tuple[float, int]:
    slot = max(next_slot, now)
    wait = (slot - now) / 1e9
    if wait > budget_s:
        raise HttpError("timeout", f"the rate limit would delay this request by {wait:.1f} s, past the action's deadline")
    return wait, slot + interval


class HttpClient:
    """Keep-alive pools per origin and resolved address; TLS with the system's roots and `ca_file`."""

    def __init__(self, config: Config, rate_dir: Optional[str], warn: Callable[[str], None]):
        self.config = config
        self.rate = RateLimiter(rate_dir, warn)
        self.pools: dict[tuple, urllib3.HTTPConnectionPool] = {}
        self.lock = threading.Lock()

    @functools.cached_property
    def tls(self) -> ssl.SSLContext:
        """Made on the first https request: loading the system's roots takes 50 ms."""
        context = ssl.create_default_context()
        if self.config.ca_pem:
            context.load_verify_locations(cadata=self.config.ca_pem)
        return context

    @functools.cached_property
    def proxy(self) -> Optional[urllib3.ProxyManager]:
        return urllib3.ProxyManager(self.config.proxy.url.expose(), ssl_context=self.tls) if self.config.proxy else None

    def send(self, policy: EgressPolicy, request: Request, deadline: float) -> Response:
        authorized = policy.authorize(request.idp, request.url, request.headers)
        url, provider = authorized.url, authorized.provider
        limit = self.config.limits.max_response_bytes
        if request.body is not None and len(request.body) > limit:
            raise HttpError("too-large", f"the request body is larger than {limit} bytes (max_response_bytes)")
        left = deadline - time.monotonic()
        if left <= 0:
            raise HttpError("timeout", "the action's deadline has passed")
        if provider.requests_per_second:
            wait = self.rate.reserve(urls.origin(url), provider.requests_per_second, left)
            time.sleep(wait)
            left = deadline - time.monotonic()
            if left <= 0:
                raise HttpError("timeout", "the action's deadline passed while waiting for the rate limit")
        headers = {name: value for name, value in request.headers}
        headers["Authorization"] = f"Bearer {provider.token.expose()}"
        connect = min(self.config.limits.connect_timeout_ms / 1000, left)
        timeout = urllib3.Timeout(connect=connect, read=left, total=left)
        target = str(url)
        try:
            if self.config.proxy is not None and url.scheme == "https" and not _bypasses_proxy(url):
                answer = self.proxy.request(
                    request.method.upper(), target, body=request.body, headers=headers, redirect=False,
                    retries=False, timeout=timeout, preload_content=False,
                )
            else:
                pool = self._pool(url, provider)
                path = url.path + (f"?{url.query}" if url.query is not None else "")
                headers["Host"] = url.host if url.port is None else f"{url.host}:{url.port}"
                answer = pool.urlopen(
                    request.method.upper(), path or "/", body=request.body, headers=headers, redirect=False,
                    retries=False, timeout=timeout, preload_content=False, assert_same_host=False,
                )
        except NewConnectionError as why:  # a subclass of ConnectTimeoutError in urllib3 2
            raise HttpError("connection-failed", f"{target}: connection refused or failed ({type(why).__name__})") from None
        except ConnectTimeoutError as why:
            raise HttpError("timeout", f"{target}: no complete answer in time ({why})") from None
        except ReadTimeoutError as why:
            raise HttpError("timeout", f"{target}: no complete answer in time ({why})", reached_server=True) from None
        except SSLError as why:
            raise HttpError("tls-failed", f"{target}: {why}") from None
        except (ProtocolError, HTTPError, OSError) as why:
            raise HttpError("connection-failed", f"{target}: the connection broke off ({type(why).__name__})", reached_server=True) from None
        try:
            body = _read_capped(answer, limit, target)
        except (ReadTimeoutError, socket.timeout):
            raise HttpError("timeout", f"{target}: no complete answer in time", reached_server=True) from None
        except (ProtocolError, HTTPError, OSError) as why:
            raise HttpError("connection-failed", f"{target}: the answer broke off ({type(why).__name__})", reached_server=True) from None
        finally:
            answer.release_conn()
        return Response(answer.status, list(answer.headers.items()), body)

    def _pool(self, url: urls.Url, provider: ProviderConfig) -> urllib3.HTTPConnectionPool:
        address = self._resolve(url, provider)
        key = (url.scheme, url.host, url.port_or_default, address)
        with self.lock:
            pool = self.pools.get(key)
            if pool is None:
                if url.scheme == "https":
                    pool = urllib3.HTTPSConnectionPool(
                        address, url.port_or_default, ssl_context=self.tls, server_hostname=url.host_name,
                        assert_hostname=url.host_name, maxsize=32, retries=False,
                    )
                else:
                    pool = urllib3.HTTPConnectionPool(address, url.port_or_default, maxsize=32, retries=False)
                self.pools[key] = pool
            return pool

    def _resolve(self, url: urls.Url, provider: ProviderConfig) -> str:
        """The first address of the host that the rules allow: loopback only when the base URL
        is loopback, private ranges only with `allow_private_network`, plain http to loopback only."""
        allow_loopback = urls.names_loopback(provider.base_url)
        try:
            infos = socket.getaddrinfo(url.host_name, url.port_or_default, type=socket.SOCK_STREAM)
        except socket.gaierror:
            raise HttpError("connection-failed", f"{url}: the host name does not resolve") from None
        refused = []
        for info in infos:
            ip = ipaddress.ip_address(info[4][0].split("%")[0])
            why = None
            if url.scheme == "http" and not ip.is_loopback:
                why = "not loopback, and plain http (allow_http) is for loopback only"
            why = why or address_refusal(ip, allow_loopback, provider.allow_private_network)
            if why is None:
                return str(ip)
            refused.append(f"{ip} ({why})")
        raise HttpError("denied", f"egress policy: {url.host_name} resolves only to refused addresses: {', '.join(refused)}")


def _bypasses_proxy(url: urls.Url) -> bool:
    no_proxy = os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or ""
    host = url.host_name.lower()
    for entry in (e.strip().lower().lstrip(".") for e in no_proxy.split(",")):
        if entry == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return True
    return False


def _read_capped(answer, limit: int, target: str) -> bytes:
    declared = answer.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HttpError("too-large", f"the answer from {target} is larger than {limit} bytes (max_response_bytes)", reached_server=True)
    chunks, size = [], 0
    for chunk in answer.stream(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise HttpError("too-large", f"the answer from {target} is larger than {limit} bytes (max_response_bytes)", reached_server=True)
        chunks.append(chunk)
    return b"".join(chunks)
