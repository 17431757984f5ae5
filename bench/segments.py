"""Scenario j: TCP segments and connections per dump, counted in a private network namespace.

On a real instance the link-local packet budget (IMDS, DNS and time sync share a per-interface
packet rate) bounds a dump, so the segments a dump costs matter as much as its time. The runner
re-runs this module as ``unshare -n python -m bench.segments --inside FILE`` (root only): in
the new namespace only ``lo`` exists and nothing else talks, so the namespace's
``/proc/net/snmp`` counters (``Tcp: OutSegs``, ``ActiveOpens``) before and after a crawl count
that crawl alone, both ends (client and emulator) together. Each crawl talks to ``aioimds
serve`` (a separate process, in the namespace too) serving the generated 2,401-path tree at
1 ms per answer; requests are its paths plus the token PUT.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

import aiohttp

from .baselines import bare_crawl, sequential_crawl
from .common import Settings, large, our_dump
from .report import Row, Stats, Target
from .server import served

__all__ = ["SegmentLine", "format_segments", "segments"]

RUNS = 3
"""Crawls of each kind (the counts barely vary)."""
LATENCY_MS = "1"


@dataclass(frozen=True)
class SegmentLine:
    """One kind of crawl: segments and connections per request, per run."""

    crawl: str
    requests: int
    segments: tuple[float, ...]
    opens: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        """This line for the JSON record."""
        return {"crawl": self.crawl, "requests": self.requests,
                "segments_per_request": list(self.segments), "connections": list(self.opens)}


def _tcp() -> dict[str, int]:
    with open("/proc/net/snmp", encoding="ascii") as fh:
        rows = [line.split() for line in fh if line.startswith("Tcp:")]
    return {k: int(v) for k, v in zip(rows[0][1:], rows[1][1:], strict=True)}


async def _measure(concurrency: int) -> list[dict[str, Any]]:
    tree = large()
    requests = len(tree.snapshot.subtree("/latest/")) + 1
    out = []
    with served("--latency-ms", LATENCY_MS, snapshot=tree.snapshot) as url:

        async def ours() -> None:
            await our_dump(url, concurrency)

        async def bare() -> None:
            async with aiohttp.ClientSession() as session:
                await bare_crawl(session, url, concurrency)

        async def seq() -> None:
            sequential_crawl(url)

        for name, crawl in ((f"aioimds dump, concurrency {concurrency}", ours),
                            (f"bare aiohttp, concurrency {concurrency}", bare),
                            ("sequential, a connection per request", seq)):
            segs: list[float] = []
            opens: list[float] = []
            for _ in range(RUNS):
                await asyncio.sleep(0.2)  # let the last crawl's connections close
                before = _tcp()
                await crawl()
                await asyncio.sleep(0.2)  # count the closing segments too
                after = _tcp()
                segs.append((after["OutSegs"] - before["OutSegs"]) / requests)
                opens.append(after["ActiveOpens"] - before["ActiveOpens"])
            out.append({"crawl": name, "requests": requests, "segments": segs, "opens": opens})
    return out


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def _inside(path: str, concurrency: int) -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    result = asyncio.run(_measure(concurrency))
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(result, fh)


async def segments(settings: Settings) -> tuple[list[Row], list[SegmentLine]]:
    """Scenario j (module docstring); nothing without root, ``unshare`` and ``ip``."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        print("  i: skipped: needs root, unshare and ip", file=sys.stderr)
        return [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "segments.json")
        await asyncio.to_thread(subprocess.run, [
            "unshare", "-n", sys.executable, "-m", "bench.segments", "--inside", path,
            str(settings.concurrency)], check=True)
        found = json.loads(await asyncio.to_thread(_read, path))
    lines = [SegmentLine(d["crawl"], d["requests"], tuple(d["segments"]), tuple(d["opens"]))
             for d in found]
    rows = []
    for ln in lines:
        target = Target("<=", 2.3) if ln.crawl.startswith("aioimds") else None
        rows.append(Row("j", f"{ln.crawl}: TCP segments per request (both ends)",
                        Stats.of(ln.segments), "segments", target,
                        note=f"{ln.requests} requests, generated tree at {LATENCY_MS} ms"))
        rows.append(Row("j", f"{ln.crawl}: TCP connections opened", Stats.of(ln.opens),
                        "connections"))
    return rows, lines


def format_segments(lines: list[SegmentLine]) -> str:
    """Scenario j as a Markdown table (medians)."""
    out = ["| crawl | requests | TCP segments per request | connections opened |",
           "|---|---|---|---|"]
    for ln in lines:
        seg, opens = Stats.of(ln.segments), Stats.of(ln.opens)
        out.append(f"| {ln.crawl} | {ln.requests} | {seg.median:.2f} | {opens.median:.0f} |")
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--inside":
        _inside(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit("usage: python -m bench.segments --inside FILE CONCURRENCY "
                 "(run by python -m bench --only j, in a new network namespace)")
