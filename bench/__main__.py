"""``python -m bench``: run the benchmark scenarios against the emulator on loopback.

Each scenario starts ``aioimds serve`` in a separate process (127.0.0.1, an ephemeral port),
repeats its measurements and reports the median and the spread. The tables go to stdout, the
figures to ``bench/results/latest.json`` (``--json``).

Scenarios: ``a`` dumps next to the baselines, ``b`` get() overhead, ``c`` token single-flight,
``d`` throttled dump, ``e`` scale and import time, ``f`` crawl concurrency sweep, ``g`` an async
service's load (single flight and the typed cache), ``h`` the dump with speculation against
``speculate=False``, ``i`` the throttle matrix (every limiter shape), ``j`` TCP segments and
connections per dump (in a private network namespace). The exit status is 1 when a target is
missed (a report, not a test: nothing in CI runs it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp

from aioimds import __version__
from aioimds.crawl import DEFAULT_CONCURRENCY

from .common import Settings
from .dumps import DumpLine, SweepLine, dumps, format_dumps, format_sweep, sweep
from .load import overhead, single_flight, throttled
from .report import Row, format_table, write_json
from .scale import imports, scale
from .segments import SegmentLine, format_segments, segments
from .service import service
from .speculation import SpecLine, format_speculation, speculation
from .throttle import ThrottleLine, format_throttle, throttle_matrix

RESULTS = Path(__file__).parent / "results" / "latest.json"
"""Default JSON output (gitignored: the README's table is the record)."""
SCENARIOS = "abcdefghij"
"""Every scenario, in the order they run."""
DEFAULT_REPEAT = 5
"""Runs per measurement; slow scenarios cap their own."""
QUICK_REPEAT = 2
"""Runs per measurement with ``--quick``."""


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {"nproc": os.cpu_count(), "cpu": _cpu_model(), "python": platform.python_version(),
            "aiohttp": aiohttp.__version__, "aioimds": __version__,
            "platform": platform.platform()}


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios; print the tables; write the JSON record."""
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=SCENARIOS, metavar="a,b,...",
                    help=f"scenarios to run, of {','.join(SCENARIOS)} (default: all)")
    ap.add_argument("--repeat", type=int, metavar="N", help="runs per measurement (default 5)")
    ap.add_argument("--quick", action="store_true",
                    help="fewer trees, sizes and runs: a smoke run of a minute or two")
    ap.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                    metavar="N", help="crawl concurrency of aioimds and the bare crawl")
    ap.add_argument("--json", type=Path, default=RESULTS, metavar="FILE")
    args = ap.parse_args(argv)
    chosen = [s for s in args.only.replace(",", "") if s in SCENARIOS]
    repeat = args.repeat or (QUICK_REPEAT if args.quick else DEFAULT_REPEAT)
    settings = Settings(repeat=max(1, repeat), quick=args.quick, concurrency=args.concurrency)

    rows: list[Row] = []
    lines: list[DumpLine] = []
    swept: list[SweepLine] = []
    guessed: list[SpecLine] = []
    matrix: list[ThrottleLine] = []
    counted: list[SegmentLine] = []

    async def run_a(s: Settings) -> list[Row]:
        found, detail = await dumps(s)
        lines.extend(detail)
        return found

    async def run_e(s: Settings) -> list[Row]:
        return [*imports(s), *await scale(s)]

    async def run_f(s: Settings) -> list[Row]:
        swept.extend(await sweep(s))
        return []

    async def run_h(s: Settings) -> list[Row]:
        found, detail = await speculation(s)
        guessed.extend(detail)
        return found

    async def run_i(s: Settings) -> list[Row]:
        found, detail = await throttle_matrix(s)
        matrix.extend(detail)
        return found

    async def run_j(s: Settings) -> list[Row]:
        found, detail = await segments(s)
        counted.extend(detail)
        return found

    steps: dict[str, Callable[[Settings], Coroutine[Any, Any, list[Row]]]] = {
        "a": run_a, "b": overhead, "c": single_flight, "d": throttled, "e": run_e, "f": run_f,
        "g": service, "h": run_h, "i": run_i, "j": run_j}
    meta = machine()
    meta["load_before"] = os.getloadavg()
    started = time.monotonic()
    for key in chosen:
        print(f"scenario {key} ...", file=sys.stderr, flush=True)
        rows += asyncio.run(steps[key](settings))
    meta.update(repeat=settings.repeat, quick=settings.quick, only="".join(chosen),
                concurrency=settings.concurrency, seconds=round(time.monotonic() - started, 1),
                load_after=os.getloadavg())
    load = "/".join(f"{x:.1f}" for x in meta["load_before"])
    print(f"machine: {meta['nproc']} x {meta['cpu']}, Python {meta['python']}, "
          f"aiohttp {meta['aiohttp']}; {meta['seconds']} s; load average before {load}\n")
    print(format_table(rows))
    if lines:
        print("\nScenario a, each tree at each latency (medians):\n\n" + format_dumps(lines))
    if swept:
        print("\nScenario f, dump ms by crawl concurrency (medians):\n\n" + format_sweep(swept))
    if guessed:
        print("\nScenario h, dump with and without speculation (medians):\n\n"
              + format_speculation(guessed))
    if matrix:
        print("\nScenario i, the throttle matrix (one run each; sequential: one request at a "
              "time, a connection each, retrying 429s and drops):\n\n" + format_throttle(matrix))
    if counted:
        print("\nScenario j, TCP per dump in a private network namespace (both ends):\n\n"
              + format_segments(counted))
    write_json(rows, args.json, meta,
               [line.to_json() for line in lines] + [line.to_json() for line in swept]
               + [line.to_json() for line in guessed] + [line.to_json() for line in matrix]
               + [line.to_json() for line in counted])
    missed = [r for r in rows if r.met is False]
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
