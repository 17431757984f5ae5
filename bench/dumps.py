"""Scenario a (dump next to the baselines and the critical-path bound) and scenario f (the
crawl concurrency sweep behind ``DEFAULT_CONCURRENCY``)."""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from .baselines import bare_crawl, sequential_crawl
from .common import Settings, Tree, critical_path, fixture_trees, large, our_dump
from .report import Row, Stats, Target, ratio
from .server import served

__all__ = ["DumpLine", "SweepLine", "dumps", "format_dumps", "format_sweep", "sweep"]

LATENCIES_MS = (0.0, 1.0, 5.0)
"""Loopback (CPU-bound), a typical IMDS answer, and a slow one."""
QUICK_LATENCIES_MS = (1.0, 5.0)
"""The latencies the targets are stated at."""
SLOW_SEQUENTIAL = 2.0
"""Seconds: a sequential crawl estimated slower than this runs at most 3 times."""
ISSUE2_TREE = "cloud-init-secondary-ip-2018"
"""The fixture of the issue-2 target (5 ms latency)."""
SWEEP = (4, 8, 16, 32, 64)
"""Crawl concurrencies compared in scenario f (1 is the sequential crawl of scenario a)."""


@dataclass(frozen=True)
class DumpLine:
    """One tree at one latency: the three crawls' times and the client CPU of the two
    concurrent ones, in seconds, and the critical-path bound."""

    tree: str
    paths: int
    depth: int
    latency_ms: float
    ours: Stats
    bare: Stats
    sequential: Stats
    ours_cpu: Stats
    bare_cpu: Stats

    @property
    def bound(self) -> float:
        """Seconds of the critical path, ``depth x latency``."""
        return self.depth * self.latency_ms / 1000

    def to_json(self) -> dict[str, Any]:
        """This line for the JSON record: every run's seconds of each crawl."""
        return {"tree": self.tree, "paths": self.paths, "depth": self.depth,
                "latency_ms": self.latency_ms, "aioimds_s": list(self.ours.values),
                "bare_aiohttp_s": list(self.bare.values),
                "sequential_s": list(self.sequential.values),
                "aioimds_cpu_s": list(self.ours_cpu.values),
                "bare_aiohttp_cpu_s": list(self.bare_cpu.values)}


async def _one_tree(tree: Tree, latency_ms: float, settings: Settings) -> DumpLine:
    expected = len(tree.snapshot.subtree("/latest/"))
    seq_runs = settings.repeat
    if expected * (latency_ms + 1.0) / 1000 > SLOW_SEQUENTIAL:
        seq_runs = min(seq_runs, 3)
    got: dict[str, list[float]] = {"ours": [], "bare": [], "seq": [], "ours_cpu": [],
                                   "bare_cpu": []}
    with served("--latency-ms", f"{latency_ms:g}", snapshot=tree.snapshot) as url:

        async def ours(keep: bool) -> int:
            mine = await our_dump(url, settings.concurrency)
            if keep:
                got["ours"].append(mine.wall)
                got["ours_cpu"].append(mine.cpu)
            return len(mine.snapshot)

        async def bare(keep: bool) -> int:
            async with aiohttp.ClientSession() as session:
                start, cpu = time.perf_counter(), time.process_time()
                walked = await bare_crawl(session, url, settings.concurrency)
                if keep:
                    got["bare"].append(time.perf_counter() - start)
                    got["bare_cpu"].append(time.process_time() - cpu)
            return len(walked)

        def seq() -> int:
            start = time.perf_counter()
            walked = sequential_crawl(url)
            got["seq"].append(time.perf_counter() - start)
            return len(walked)

        counts = set()
        for rep in range(settings.repeat + 1):  # run 0 warms both processes up
            for run in (ours, bare) if rep % 2 else (bare, ours):  # each goes first as often
                gc.collect()  # neither pays for the garbage of the one before
                counts.add(await run(rep > 0))
        # Apart and after: a dump right after the sequential crawl's thousands of short-lived
        # connections was measured up to 30% slower, so none follows one.
        for _ in range(seq_runs):
            counts.add(seq())
        if counts != {expected}:
            raise RuntimeError(f"{tree.name}: the crawls disagree: {counts} != {expected}")
    return DumpLine(tree.name, expected, critical_path(tree.snapshot), latency_ms,
                    *(Stats.of(got[k]) for k in ("ours", "bare", "seq", "ours_cpu", "bare_cpu")))


def _target_rows(line: DumpLine, is_large: bool, concurrency: int) -> list[Row]:
    where = f"{line.tree} @ {line.latency_ms:g} ms"
    rows = []
    if is_large and line.latency_ms == 1.0:
        rows.append(Row("a", f"{where}: x faster than sequential conn-per-request",
                        ratio(line.sequential, line.ours), "x", Target(">=", 8)))
        rows.append(Row("a", f"{where}: aioimds time / bare aiohttp time",
                        ratio(line.ours, line.bare), "x", Target("<=", 1.0),
                        note=f"both at concurrency {concurrency}"))
        rows.append(Row("a", f"{where}: aioimds client CPU / bare aiohttp client CPU",
                        ratio(line.ours_cpu, line.bare_cpu), "x",
                        note="the same runs, CPU time of the client process"))
    if not is_large and line.latency_ms == 1.0:
        rows.append(Row("a", f"{where}: aioimds time / (D x L), D={line.depth}",
                        line.ours.scaled(1 / line.bound), "x", Target("<=", 1.5)))
    if line.tree == ISSUE2_TREE and line.latency_ms == 5.0:
        rows.append(Row("a", f"{where}: x faster than sequential conn-per-request",
                        ratio(line.sequential, line.ours), "x", Target(">=", 5)))
        rows.append(Row("a", f"{where}: aioimds time / (D x L), D={line.depth}",
                        line.ours.scaled(1 / line.bound), "x", Target("<=", 1.5)))
    return rows


async def dumps(settings: Settings) -> tuple[list[Row], list[DumpLine]]:
    """Scenario a: every fixture tree and the generated ~2,400-path tree at each latency."""
    trees = fixture_trees()
    if settings.quick:
        trees = [t for t in trees if t.name == ISSUE2_TREE]
    big = large()
    rows: list[Row] = []
    lines: list[DumpLine] = []
    for latency in QUICK_LATENCIES_MS if settings.quick else LATENCIES_MS:
        for tree in [*trees, big]:
            line = await _one_tree(tree, latency, settings)
            lines.append(line)
            rows.extend(_target_rows(line, tree is big, settings.concurrency))
    return rows, lines


@dataclass(frozen=True)
class SweepLine:
    """One tree at one latency: dump seconds at each concurrency of :data:`SWEEP`."""

    tree: str
    latency_ms: float
    times: dict[int, Stats]

    def to_json(self) -> dict[str, Any]:
        """This line for the JSON record."""
        return {"tree": self.tree, "latency_ms": self.latency_ms,
                "seconds_by_concurrency": {c: list(t.values) for c, t in self.times.items()}}


async def sweep(settings: Settings) -> list[SweepLine]:
    """Scenario f: a realistic fixture (when present) and the generated tree, each dumped at
    every concurrency of :data:`SWEEP`, at each latency of :data:`LATENCIES_MS`."""
    trees = [t for t in fixture_trees() if t.name == ISSUE2_TREE] + [large()]
    lines = []
    for tree in trees:
        for latency in QUICK_LATENCIES_MS if settings.quick else LATENCIES_MS:
            times: dict[int, list[float]] = {c: [] for c in SWEEP}
            with served("--latency-ms", f"{latency:g}", snapshot=tree.snapshot) as url:
                await our_dump(url, settings.concurrency)  # warm-up
                for _ in range(settings.repeat):
                    for conc in SWEEP:  # interleaved: drift hits every concurrency alike
                        gc.collect()
                        times[conc].append((await our_dump(url, conc)).wall)
            lines.append(SweepLine(tree.name, latency,
                                   {c: Stats.of(t) for c, t in times.items()}))
    return lines


def format_sweep(lines: list[SweepLine]) -> str:
    """Scenario f as a Markdown table: median dump ms per concurrency, the fastest in bold."""
    head = " | ".join(f"concurrency {c}" for c in SWEEP)
    out = [f"| tree | latency | {head} |", "|---|---|" + "---|" * len(SWEEP)]
    for ln in lines:
        best = min(t.median for t in ln.times.values())
        cells = [f"**{t.median * 1000:.1f}**" if t.median == best else f"{t.median * 1000:.1f}"
                 for t in ln.times.values()]
        out.append(f"| {ln.tree} | {ln.latency_ms:g} ms | " + " | ".join(cells) + " |")
    return "\n".join(out)


def format_dumps(lines: list[DumpLine]) -> str:
    """Scenario a's detail as a Markdown table (medians; the spread of aioimds' time)."""
    out = ["| tree | paths | D | latency | aioimds ms (min-max) | bare aiohttp ms | "
           "sequential ms | x faster than sequential | aioimds / bare | aioimds / (D x L) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for ln in lines:
        o = ln.ours
        bound = f"{o.median / ln.bound:.2f}" if ln.bound else "-"
        out.append(
            f"| {ln.tree} | {ln.paths} | {ln.depth} | {ln.latency_ms:g} ms | "
            f"{o.median * 1000:.1f} ({o.low * 1000:.1f}-{o.high * 1000:.1f}) | "
            f"{ln.bare.median * 1000:.1f} | {ln.sequential.median * 1000:.0f} | "
            f"{ln.sequential.median / o.median:.1f} | {o.median / ln.bare.median:.2f} | "
            f"{bound} |")
    return "\n".join(out)
