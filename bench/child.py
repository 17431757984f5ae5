"""A dump in a process of its own, so its peak RSS is the client's alone.

``python -m bench.child URL CONCURRENCY`` dumps ``URL`` and prints one JSON line
``{"seconds": ..., "paths": ..., "maxrss_kib": ...}``. It imports aioimds and nothing else of
the benchmarks (no emulator, no generator), so nothing but the client counts.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time

from aioimds import IMDSClient, IMDSConfig

TIMEOUT = 5.0
"""Seconds per attempt, as the other benchmarks use."""


async def _dump(url: str, concurrency: int) -> tuple[float, int]:
    async with IMDSClient(IMDSConfig(endpoint=url, timeout=TIMEOUT)) as imds:
        start = time.perf_counter()
        snap = await imds.dump(concurrency=concurrency)
        return time.perf_counter() - start, len(snap)


def main() -> None:
    """Dump, then print the time, the path count and the peak RSS."""
    seconds, paths = asyncio.run(_dump(sys.argv[1], int(sys.argv[2])))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "paths": paths, "maxrss_kib": rss}))


if __name__ == "__main__":
    main()
