"""`soarapps package build`, with the wheel downloads it makes held to a few at once and tried
again after a transport failure or a 5xx answer: the SDK fetches every wheel at once with a
10-second limit, which a busy index or a slow link fails. The SDK's code is not changed: its
fetch is wrapped for this process only."""

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
from soar_sdk.cli.cli import main
from soar_sdk.meta.dependencies.sources import UvWheel

AT_ONCE = 4
ATTEMPTS = 5

Fetch = Callable[[UvWheel], Coroutine[Any, Any, bytes]]


def patient(fetch: Fetch) -> Fetch:
    gates: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}

    async def fetch_patiently(wheel: UvWheel) -> bytes:
        gate = gates.setdefault(asyncio.get_running_loop(), asyncio.Semaphore(AT_ONCE))
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with gate:
                    return await fetch(wheel)
            except (httpx.TransportError, httpx.HTTPStatusError) as failure:
                server_side = not isinstance(failure, httpx.HTTPStatusError) or failure.response.status_code >= 500
                if not server_side or attempt == ATTEMPTS:
                    raise
                print(f"fetching {wheel.url} failed ({failure!r}); trying again", file=sys.stderr)
                await asyncio.sleep(2**attempt)
        raise AssertionError("unreachable")

    return fetch_patiently


UvWheel.fetch = patient(UvWheel.fetch)  # type: ignore[method-assign,assignment]

if __name__ == "__main__":
    sys.argv[0] = "soarapps"
    main()
