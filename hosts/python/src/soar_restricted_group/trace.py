"""What one action exchanged with servers, for those who watch (`--trace FILE`, the request log):
soar-host's HTTP Archive (HAR 1.2), one entry per request that reached a server (as many as
`http_requests`), headers and bodies as the host saw them with every form of the token scrubbed,
bodies capped at 64 KiB. The file is opened before anything is sent and written when the action
ends."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from typing import Optional
from urllib.parse import parse_qsl, urlsplit

from . import files

MAX_TRACE_BODY_BYTES = 64 * 1024
_HTTP_ERROR_WORDS = {"connection-failed": "connection failed", "tls-failed": "TLS failed", "too-large": "too large"}


@dataclass
class Exchange:
    """One request and what came of it: `status`, `headers` and `body` when an answer came,
    else `error` (kind, message)."""

    idp: str
    method: str
    url: str
    request_headers: list
    request_body: Optional[bytes]
    started: datetime
    duration_s: float
    reached_network: bool
    doing: str
    attempt: int
    reason: Optional[str]
    status: Optional[int] = None
    headers: Optional[list] = None
    body: Optional[bytes] = None
    error: Optional[tuple[str, str]] = None


def request_line(exchange: Exchange) -> str:
    """soar-host's request log line: `[idp] METHOD path?query -> answer in N ms, attempt N,
    because REASON: DOING`."""
    _, _, rest = exchange.url.partition("://")
    slash = rest.find("/")
    target = rest[slash:] if slash >= 0 else "/"
    if exchange.error is not None:
        kind, message = exchange.error
        outcome = f"{_HTTP_ERROR_WORDS.get(kind, kind)}: {message}"
    else:
        outcome = f"{exchange.status} ({len(exchange.body)} bytes)"
    line = f"[{exchange.idp}] {exchange.method} {target} -> {outcome} in {int(exchange.duration_s * 1000)} ms"
    if exchange.attempt > 1:
        line += f", attempt {exchange.attempt}"
    if exchange.reason:
        line += f", because {exchange.reason}"
    if exchange.doing:
        line += f": {exchange.doing}"
    return line


class Recorder:
    """Keeps the exchanges that reached a server."""

    def __init__(self):
        self.exchanges: list[Exchange] = []
        self.lock = threading.Lock()

    def __call__(self, exchange: Exchange) -> None:
        if exchange.reached_network:
            with self.lock:
                self.exchanges.append(exchange)

    def har(self, creator: tuple[str, str]) -> dict:
        with self.lock:
            exchanges = sorted(self.exchanges, key=lambda exchange: exchange.started)
        return {"log": {"version": "1.2", "creator": {"name": creator[0], "version": creator[1]}, "pages": [],
                        "entries": [_entry(exchange) for exchange in exchanges]}}


def _header(headers: list, name: str) -> Optional[str]:
    return next((value for key, value in headers if key.lower() == name), None)


def _headers(headers: list) -> list:
    return [{"name": name, "value": value} for name, value in headers]


def _body_text(mime: str, body: bytes) -> dict:
    """A body as HAR text: its first 64 KiB (on a character boundary)."""
    text = body.decode("utf-8", "replace").encode()
    shown_bytes = text[:MAX_TRACE_BODY_BYTES].decode("utf-8", "ignore")
    shown = {"mimeType": mime, "text": shown_bytes}
    if len(text) > MAX_TRACE_BODY_BYTES:
        shown["comment"] = f"the first {len(shown_bytes.encode())} of {len(body)} bytes"
    return shown


def _entry(exchange: Exchange) -> dict:
    millis = exchange.duration_s * 1000
    request = {
        "method": exchange.method, "url": exchange.url, "httpVersion": "HTTP/1.1", "cookies": [],
        "headers": _headers(exchange.request_headers),
        "queryString": [{"name": n, "value": v} for n, v in parse_qsl(urlsplit(exchange.url).query, keep_blank_values=True)],
        "headersSize": -1, "bodySize": len(exchange.request_body or b""),
    }
    if exchange.request_body is not None:
        mime = _header(exchange.request_headers, "content-type") or "application/octet-stream"
        request["postData"] = _body_text(mime, exchange.request_body)
    if exchange.error is None:
        content = _body_text(_header(exchange.headers, "content-type") or "x-unknown", exchange.body)
        content["size"] = len(exchange.body)
        try:
            reason = HTTPStatus(exchange.status).phrase
        except ValueError:
            reason = ""
        response = {
            "status": exchange.status, "statusText": reason, "httpVersion": "HTTP/1.1", "cookies": [],
            "headers": _headers(exchange.headers), "content": content,
            "redirectURL": _header(exchange.headers, "location") or "", "headersSize": -1, "bodySize": len(exchange.body),
        }
        error = None
    else:  # reached the server, but no complete answer came back
        response = {
            "status": 0, "statusText": "", "httpVersion": "HTTP/1.1", "cookies": [], "headers": [],
            "content": {"size": 0, "mimeType": "x-unknown"}, "redirectURL": "", "headersSize": -1, "bodySize": -1,
        }
        kind, message = exchange.error
        error = f"{_HTTP_ERROR_WORDS.get(kind, kind)}: {message}"
    return {
        "startedDateTime": exchange.started.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "time": millis, "request": request, "response": response, "cache": {},
        "timings": {"blocked": 0, "dns": -1, "connect": -1, "send": 0, "wait": millis, "receive": 0, "ssl": -1},
        "_idp": exchange.idp, "_doing": exchange.doing, "_attempt": exchange.attempt, "_reason": exchange.reason,
        "_error": error,
    }


class TraceError(Exception):
    pass


class TraceFile:
    """The trace's file: opened (created owner-only, never through a link) before the action, so
    that an unusable path refuses it before anything is sent; written over when it ends."""

    def __init__(self, path: str):
        self.path = path
        try:
            self.file = files.open_to_replace(path)
        except (files.FileProblem, OSError) as why:
            raise TraceError(f"--trace {path}: cannot write there ({why}); name a regular file in a folder you can write") from None

    def write(self, har: dict) -> None:
        try:
            with self.file:
                self.file.truncate(0)
                self.file.seek(0)
                self.file.write(json.dumps(har, indent=2, ensure_ascii=False).encode())
                self.file.flush()
                os.fsync(self.file.fileno())
        except OSError as why:
            raise TraceError(f"--trace {self.path}: writing the trace failed ({why.strerror or why})") from None
