"""Scenario h: the dump with speculation against ``speculate=False`` (the critical path).

Every fixture tree and the generated ~2,400-path tree at 1, 5 and 60 ms per answer, then the
fixtures and the generated tree under the emulator's throttle. Each pair of runs checks that
both dumps are the same snapshot, byte for byte (a difference stops the run).
"""

from __future__ import annotations

import asyncio
import gc
import time
from dataclasses import dataclass
from typing import Any

from aioimds import CrawlResult

from .common import Settings, Tree, critical_path, fixture_trees, large, loopback_client
from .report import Row, Stats, Target, ratio
from .server import served

__all__ = ["SpecLine", "format_speculation", "speculation"]

LATENCIES_MS = (1.0, 5.0, 60.0)
"""A fast answer, a typical one, and one behind a proxy or a slow service (case C07)."""
TARGET_LATENCIES_MS = (5.0, 60.0)
"""Where the time target holds (at 1 ms the client's CPU is the bound)."""
TIME_TARGET = 0.5
"""Dump time / (D x L) with speculation on the realistic fixtures."""
WASTE_TARGET = 5.0
"""Wasted guesses, % of the tree's paths."""
SLOW_RUNS = 3
"""Runs at most for a dump estimated slower than :data:`SLOW_DUMP` seconds."""
SLOW_DUMP = 1.0
THROTTLES = ((False, 50), (True, 200))
"""(generated tree?, requests per second) of the throttled comparison."""
THROTTLED_RUNS = 2
"""Runs per side under a throttle (a generated dump at 200 req/s takes about 12 s)."""
BUCKET_REFILL = 0.5
"""Seconds between throttled runs, so each one starts with a full bucket."""


@dataclass(frozen=True)
class SpecLine:
    """One tree at one latency (or throttle): both dumps' seconds, what speculation sent and
    wasted per run."""

    tree: str
    paths: int
    depth: int
    latency_ms: float
    throttle_rps: float | None
    plain: Stats
    spec: Stats
    sent: Stats
    wasted: Stats

    @property
    def bound(self) -> float:
        """Seconds of the critical path, ``depth x latency``."""
        return self.depth * self.latency_ms / 1000

    def to_json(self) -> dict[str, Any]:
        """This line for the JSON record."""
        return {"scenario": "h", "tree": self.tree, "paths": self.paths, "depth": self.depth,
                "latency_ms": self.latency_ms, "throttle_rps": self.throttle_rps,
                "plain_s": list(self.plain.values), "speculate_s": list(self.spec.values),
                "guesses_sent": list(self.sent.values), "wasted": list(self.wasted.values)}


async def _dump(url: str, speculate: bool, concurrency: int) -> tuple[float, CrawlResult]:
    async with loopback_client(url) as imds:
        start = time.perf_counter()
        result = await imds.dump(concurrency=concurrency, partial=True, speculate=speculate)
        return time.perf_counter() - start, result


async def _pairs(url: str, runs: int, settings: Settings, tree: str,
                 pause: float = 0.0) -> dict[str, list[float]]:
    got: dict[str, list[float]] = {"plain": [], "spec": [], "sent": [], "wasted": []}
    for rep in range(runs):
        results: dict[bool, CrawlResult] = {}
        for speculate in (True, False) if rep % 2 else (False, True):  # each first as often
            await asyncio.sleep(pause)
            gc.collect()
            seconds, result = await _dump(url, speculate, settings.concurrency)
            results[speculate] = result
            got["spec" if speculate else "plain"].append(seconds)
        spec, plain = results[True], results[False]
        if spec.snapshot.dumps() != plain.snapshot.dumps() or spec.failures or plain.failures:
            raise RuntimeError(f"{tree}: the dump with speculation differs from the one without")
        got["sent"].append(spec.speculation.sent)
        got["wasted"].append(spec.speculation.wasted)
    return got


def _line(tree: Tree, latency_ms: float, rps: float | None,
          got: dict[str, list[float]]) -> SpecLine:
    return SpecLine(tree.name, len(tree.snapshot.subtree("/latest/")),
                    critical_path(tree.snapshot), latency_ms, rps,
                    *(Stats.of(got[k]) for k in ("plain", "spec", "sent", "wasted")))


def _rows(line: SpecLine, realistic: bool) -> list[Row]:
    where = (f"{line.tree} @ {line.latency_ms:g} ms" if line.throttle_rps is None
             else f"{line.tree} at {line.throttle_rps:g} req/s")
    rows = [Row("h", f"{where}: wasted guesses / N, N={line.paths}",
                line.wasted.scaled(100 / line.paths), "%", Target("<=", WASTE_TARGET))]
    if line.throttle_rps is not None:
        rows.append(Row("h", f"{where}: time with speculation / without",
                        ratio(line.spec, line.plain), "x", Target("<=", 1.0)))
        return rows
    target = (Target("<=", TIME_TARGET)
              if realistic and line.latency_ms in TARGET_LATENCIES_MS else None)
    rows.append(Row("h", f"{where}: time with speculation / (D x L), D={line.depth}",
                    line.spec.scaled(1 / line.bound), "x", target))
    return rows


async def speculation(settings: Settings) -> tuple[list[Row], list[SpecLine]]:
    """Scenario h: each tree at each latency, then under a throttle, with and without
    speculation."""
    fixtures = fixture_trees()
    big = large()
    if settings.quick:
        fixtures = fixtures[:1]
    rows: list[Row] = []
    lines: list[SpecLine] = []
    for latency in LATENCIES_MS:
        for tree in [*fixtures, big]:
            estimate = len(tree.snapshot) / settings.concurrency * latency / 1000
            runs = min(settings.repeat, SLOW_RUNS) if estimate > SLOW_DUMP else settings.repeat
            with served("--latency-ms", f"{latency:g}", snapshot=tree.snapshot) as url:
                await _dump(url, True, settings.concurrency)  # warm both processes up
                got = await _pairs(url, runs, settings, tree.name)
            line = _line(tree, latency, None, got)
            lines.append(line)
            rows += _rows(line, tree is not big)
    for generated, rps in THROTTLES:
        for tree in [big] if generated else fixtures:
            runs = 1 if settings.quick else THROTTLED_RUNS
            with served("--throttle-rps", f"{rps:g}", snapshot=tree.snapshot) as url:
                got = await _pairs(url, runs, settings, tree.name, pause=BUCKET_REFILL)
            line = _line(tree, 0.0, rps, got)
            lines.append(line)
            rows += _rows(line, tree is not big)
    return rows, lines


def format_speculation(lines: list[SpecLine]) -> str:
    """Scenario h's detail as a Markdown table (medians)."""
    out = ["| tree | N | D | latency or throttle | without ms | with ms | without / (D x L) | "
           "with / (D x L) | guesses sent | wasted | wasted / N |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for ln in lines:
        where = (f"{ln.latency_ms:g} ms" if ln.throttle_rps is None
                 else f"{ln.throttle_rps:g} req/s")
        bound = (f"{ln.plain.median / ln.bound:.2f} | {ln.spec.median / ln.bound:.2f}"
                 if ln.bound else "- | -")
        out.append(
            f"| {ln.tree} | {ln.paths} | {ln.depth} | {where} | {ln.plain.median * 1000:.1f} | "
            f"{ln.spec.median * 1000:.1f} | {bound} | {ln.sent.median:.0f} | "
            f"{ln.wasted.median:.0f} | {100 * ln.wasted.median / ln.paths:.1f}% |")
    return "\n".join(out)
