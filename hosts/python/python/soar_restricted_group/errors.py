"""The one exception the API raises for bad input: a config or plugin that cannot be used."""

from __future__ import annotations


class Refusal(Exception):
    """Refused before anything was sent: `kind` is `invalid-config` or `plugin-load`, and
    `message` says what is wrong and what to do (never the value of a secret)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
