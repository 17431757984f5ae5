"""Scenario e: memory and time of large dumps (each in a child process,
:mod:`bench.child`, so the peak RSS is the client's alone), the cost of ``import aioimds`` and
the CLI's start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from .common import Settings, large
from .report import Row, Stats, Target, ratio
from .server import served

__all__ = ["imports", "scale"]

SIZES = ((20, 480), (200, 480))
"""``large_tree`` arguments: about 10,000 and 100,000 paths."""
SCALE_RUNS = 3
"""Runs per size at most: the 100,000-path dump takes tens of seconds."""
RSS_LIMIT_MB = 200
"""Target: peak RSS of a 100,000-path dump."""
IMPORT_RUNS = 15
"""Fresh interpreters per measured command."""
KIB_PER_MB = 1024
"""``ru_maxrss`` is in KiB on Linux."""


def _run_child(url: str, concurrency: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-m", "bench.child", url, str(concurrency)],
                         capture_output=True, check=True, text=True)
    result: dict[str, float] = json.loads(out.stdout)
    return result


async def scale(settings: Settings) -> list[Row]:
    """Dumps of about 10,000 and 100,000 paths, each in a child process."""
    sizes = SIZES[:1] if settings.quick else SIZES
    per_k: dict[int, Stats] = {}
    rows = []
    for interfaces, associations in sizes:
        tree = large(interfaces, associations)
        runs: list[dict[str, float]] = []
        with served(snapshot=tree.snapshot) as url:
            for _ in range(min(settings.repeat, SCALE_RUNS)):
                runs.append(_run_child(url, settings.concurrency))
        paths = int(runs[0]["paths"])
        seconds = Stats.of(r["seconds"] for r in runs)
        rss = Stats.of(r["maxrss_kib"] / KIB_PER_MB for r in runs)
        per_k[paths] = seconds.scaled(1000 * 1000 / paths)
        rows += [Row("e", f"dump of {paths:,} paths: time", seconds, "s"),
                 Row("e", f"dump of {paths:,} paths: time per 1,000 paths", per_k[paths], "ms"),
                 Row("e", f"dump of {paths:,} paths: peak RSS of the client process", rss, "MB",
                     Target("<", RSS_LIMIT_MB) if paths > 50_000 else None)]
    if len(per_k) == 2:
        small, big = sorted(per_k)
        rows.append(Row("e", f"time per 1,000 paths at {big:,} / at {small:,}",
                        ratio(per_k[big], per_k[small]), "x", Target("<=", 1.2),
                        note="1.0 is linear"))
    return rows


def _seconds(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def imports(settings: Settings) -> list[Row]:
    """``import aioimds`` next to ``import aiohttp`` and ``aioimds --version``, each in fresh
    interpreters with bytecode caching on, net of the interpreter's own start-up
    (``python -c pass``)."""
    py = sys.executable
    cli = os.path.join(os.path.dirname(py), "aioimds")
    commands = {"pass": [py, "-c", "pass"], "aiohttp": [py, "-c", "import aiohttp"],
                "aioimds": [py, "-c", "import aioimds"], "cli": [cli, "--version"]}
    # Bytecode caching on, as in an installed package; the untimed first round writes it.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for argv in commands.values():
        _seconds(argv, env)
    times: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(IMPORT_RUNS if not settings.quick else IMPORT_RUNS // 3):
        for key, argv in commands.items():  # interleaved: drift hits all alike
            times[key].append(_seconds(argv, env))
    base = times["pass"]
    net = {k: Stats.of(t - b for t, b in zip(v, base, strict=True)) for k, v in times.items()}
    return [
        Row("e", "import aioimds / import aiohttp (net of python -c pass)",
            ratio(net["aioimds"], net["aiohttp"]), "x", Target("<", 1.3)),
        Row("e", "import aioimds (net)", net["aioimds"].scaled(1000), "ms"),
        Row("e", "import aiohttp (net)", net["aiohttp"].scaled(1000), "ms"),
        Row("e", "aioimds --version (whole process)", Stats.of(times["cli"]).scaled(1000), "ms"),
        Row("e", "python -c pass (whole process)", Stats.of(base).scaled(1000), "ms"),
    ]
