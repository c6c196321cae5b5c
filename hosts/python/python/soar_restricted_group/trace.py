"""`host.run(..., watch=trace.Recorder())` keeps an action's exchanges; `recorder.har()` is the
HAR 1.2 document `soar-host --trace FILE` writes."""

from __future__ import annotations

from ._native import Recorder

__all__ = ["Recorder"]
