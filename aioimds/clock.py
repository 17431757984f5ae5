"""The one clock the library reads: the running event loop's.

Timeouts, deadlines, token expiry and pacing all measure seconds on the event loop's monotonic
clock (``loop.time()``), the clock aiohttp's timeouts and ``asyncio.sleep`` use too, so every
wait agrees with every measurement, and tests can run the loop in virtual time. Outside a running
loop (a synchronous caller, a constructor) the same monotonic clock is read directly.
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["now"]


def now() -> float:
    """Seconds on the running event loop's clock (``time.monotonic()`` when no loop runs)."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()
