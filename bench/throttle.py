"""Scenario i: the throttle matrix. A ~900-path tree dumped from an emulator (a separate
process, :mod:`bench.emuproc`) throttled in each shape, next to a sequential crawl that
retries.

- each shape at 50, 200 and 1,000 req/s: token buckets of burst 1, 5, rate/10 and rate, a
  fixed and a sliding one-second window, and a bucket of burst rate/10 that drops the excess
  (connections closed without an answer) instead of answering 429;
- one early 429 (``meta-data/`` once, no throttle after) against the same dump without it;
- a rate that halves and recovers mid-dump (200 req/s, 100 from 1.5 s, 200 again from 3 s);
- four dumps at once sharing one 50 req/s emulator.

``x`` is the dump's time over ``N / rate``, N the requests answered (neither 429 nor dropped,
the token PUT included), as the emulator counted them; for the changing rate, over the time
the limiter needed to grant N. 429s after the first second (of the dump, and of throttling:
1 s after the first refusal, since a window's first refused tail can start late in a dump's
first second) are timed by the client. Every case gets a fresh emulator, so each starts with a
full bucket; a fixed window's phase against the dump is whatever it happens to be.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aioimds import IMDSClient, IMDSConnectionError, IMDSTimeoutError, Snapshot
from aioimds.emulator.generate import large_tree
from aioimds.emulator.throttle import default_burst

from .baselines import sequential_crawl
from .common import Settings, loopback_client
from .report import Row, Stats, Target

__all__ = ["ThrottleLine", "format_throttle", "throttle_matrix"]

TREE_SIZE = (20, 21)
"""``large_tree`` arguments of the matrix's tree: 901 paths below ``/latest/``."""
RATES = (50, 200, 1000)
QUICK_RATES = (200,)
EARLY_RUNS = 8
"""Pairs of unthrottled dumps, with and without the early 429."""
WARM_UP = 50
"""GETs of one leaf sent to each fresh emulator before its timed dump (not ``meta-data/``)."""
SHARED = 4
"""Dumps at once against one emulator."""
SHARED_RATE = 50
HALVING = (200.0, ((1.5, 100.0), (3.0, 200.0)))
"""The changing rate: 200 req/s, 100 from 1.5 s after the first request, 200 from 3 s."""
FIRST_SECOND = 1.0
"""Seconds at the start of a dump whose 429s the 5% target leaves out (the discovery)."""


@dataclass
class Tally:
    """What one crawl (or several at once) met."""

    seconds: float = 0.0
    answered: int = 0
    refused: int = 0
    dropped: int = 0
    late_429: int = 0
    settled_429: int = 0
    failed: int = 0
    load: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The tally as plain numbers."""
        return dict(self.__dict__)


@dataclass
class ThrottleLine:
    """One row of the matrix: a case, our dump and the sequential crawl."""

    case: str
    kind: str
    rate: float
    ideal: float
    ours: Tally
    sequential: Tally | None = None
    seq_ideal: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def x(self) -> float:
        """Our time over the ideal time."""
        return self.ours.seconds / self.ideal if self.ideal else 0.0

    @property
    def seq_x(self) -> float:
        """The sequential crawl's time over its ideal time."""
        s = self.sequential
        return s.seconds / self.seq_ideal if s is not None and self.seq_ideal else 0.0

    def to_json(self) -> dict[str, Any]:
        """This line for the JSON record."""
        return {"case": self.case, "kind": self.kind, "rate": self.rate, "ideal_s": self.ideal,
                "x": self.x, "sequential_x": self.seq_x, "aioimds": self.ours.to_json(),
                "sequential": None if self.sequential is None else self.sequential.to_json(),
                **self.extra}


@contextlib.contextmanager
def _emulator(args: list[str], snapshot: Snapshot, report: dict[str, Any]) -> Iterator[str]:
    """:mod:`bench.emuproc` serving ``snapshot`` with ``args``; on exit ``report`` holds the
    statuses it answered."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tree.snapshot.json")
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(snapshot.to_json(), fh)
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.emuproc", "--port", "0", "--snapshot", path, *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()
            if not url.startswith("http://"):
                raise RuntimeError("bench.emuproc did not print its URL")
            yield url
        finally:
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=60)
            if out.strip():
                report.update(json.loads(out.strip().splitlines()[-1]))


def _counts(report: dict[str, Any]) -> tuple[int, int, int]:
    """(answered, 429s, dropped) from an emulator's report."""
    answered = refused = dropped = 0
    for key, n in report.get("statuses", {}).items():
        status = int(key.split()[1])
        if status == 429:
            refused += n
        elif status == 0:
            dropped += n
        else:
            answered += n
    return answered, refused, dropped


class _Clock:
    """Client-side times of the 429s one client met, from the start of its dump."""

    def __init__(self, imds: IMDSClient) -> None:
        self.start = time.perf_counter()
        self.refusals: list[float] = []
        transport: Any = imds._transport
        send = transport.send

        async def counting(*args: Any, **kwargs: Any) -> Any:
            try:
                answer = await send(*args, **kwargs)
            except (IMDSConnectionError, IMDSTimeoutError):
                self.refusals.append(time.perf_counter() - self.start)
                raise
            if answer.status == 429:
                self.refusals.append(time.perf_counter() - self.start)
            return answer

        transport.send = counting

    def late(self) -> int:
        """Refusals after the dump's first second."""
        return sum(1 for t in self.refusals if t > FIRST_SECOND)

    def settled(self) -> int:
        """Refusals after the first second of throttling (1 s after the first refusal)."""
        if not self.refusals:
            return 0
        edge = min(self.refusals) + FIRST_SECOND
        return sum(1 for t in self.refusals if t > edge)


async def _our_dumps(url: str, count: int,
                     concurrency: int) -> tuple[float, int, int, int]:
    """``count`` dumps at once; (seconds until all are done, failed paths, refusals after the
    first second of the dumps, refusals after the first second of throttling)."""
    clients = [loopback_client(url) for _ in range(count)]
    for imds in clients:
        await imds.open()
    try:
        clocks = [_Clock(imds) for imds in clients]
        start = time.perf_counter()
        for clk in clocks:
            clk.start = start
        results = await asyncio.gather(*(imds.dump(concurrency=concurrency, partial=True)
                                         for imds in clients))
        seconds = time.perf_counter() - start
    finally:
        for imds in clients:
            await imds.close()
    return (seconds, sum(len(r.failures) for r in results), sum(c.late() for c in clocks),
            sum(c.settled() for c in clocks))


def _sequential(url: str, count: int) -> tuple[float, int, Counter[str]]:
    """``count`` retrying sequential crawls at once (threads); (seconds, failed, counts)."""
    seen: Counter[str] = Counter()
    failed = [0]

    def one() -> None:
        try:
            sequential_crawl(url, retry=True, seen=seen)
        except Exception:  # a failed baseline is a figure, not a crash
            failed[0] += 1

    start = time.perf_counter()
    threads = [threading.Thread(target=one) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, failed[0], seen


async def _case(args: list[str], snapshot: Snapshot, concurrency: int, *, dumps: int = 1,
                sequential: bool = True) -> tuple[Tally, Tally | None]:
    report: dict[str, Any] = {}
    load = os.getloadavg()[0]
    with _emulator(args, snapshot, report) as url:
        seconds, failed, late, settled = await _our_dumps(url, dumps, concurrency)
    answered, refused, dropped = _counts(report)
    ours = Tally(seconds, answered, refused, dropped, late, settled, failed, load)
    if not sequential:
        return ours, None
    report = {}
    load = os.getloadavg()[0]
    with _emulator(args, snapshot, report) as url:
        seconds, failed_seq, _ = _sequential(url, dumps)
    answered, refused, dropped = _counts(report)
    return ours, Tally(seconds, answered, refused, dropped, 0, 0, failed_seq, load)


def _answered(tally: Tally | None) -> int:
    return 0 if tally is None else tally.answered


def _shapes(rate: float) -> list[tuple[str, str, list[str]]]:
    """(label, kind, emulator options) of every shape at ``rate``."""
    r = f"{rate:g}"
    out = []
    for burst in sorted({1.0, 5.0, default_burst(rate), float(rate)}):
        out.append((f"bucket, burst {burst:g}", "bucket",
                    ["--throttle-rps", r, "--throttle-burst", f"{burst:g}"]))
    out.append(("fixed 1 s window", "window",
                ["--throttle-rps", r, "--throttle-shape", "fixed-window"]))
    out.append(("sliding 1 s window", "window",
                ["--throttle-rps", r, "--throttle-shape", "sliding-window"]))
    out.append((f"drop, bucket burst {default_burst(rate):g}", "drop",
                ["--throttle-rps", r, "--throttle-drop"]))
    return out


def _granted_by(answered: int, rate: float, burst: float,
                steps: tuple[tuple[float, float], ...]) -> float:
    """Seconds a bucket of ``burst`` at ``rate`` (changing at ``steps``) needs to grant
    ``answered`` requests."""
    need = answered - burst
    t, current = 0.0, rate
    for at, step_rate in steps:
        if need <= current * (at - t):
            return t + need / current
        need -= current * (at - t)
        t, current = at, step_rate
    return t + need / current


async def throttle_matrix(settings: Settings) -> tuple[list[Row], list[ThrottleLine]]:
    """Scenario i (module docstring)."""
    snap = large_tree(*TREE_SIZE)
    conc = settings.concurrency
    lines: list[ThrottleLine] = []
    rates = QUICK_RATES if settings.quick else RATES
    for rate in rates:
        for label, kind, args in _shapes(rate):
            seq = not settings.quick or label == "bucket, burst 20"
            ours, sequential = await _case(args, snap, conc, sequential=seq)
            lines.append(ThrottleLine(label, kind, rate, ours.answered / rate, ours, sequential,
                                      _answered(sequential) / rate))
            print(f"  h: {label} at {rate:g}: {ours.seconds:.2f} s", file=sys.stderr)

    base, steps = HALVING
    args = ["--throttle-rps", f"{base:g}"] + [
        a for at, r in steps for a in ("--throttle-step", f"{at:g}:{r:g}")]
    ours, sequential = await _case(args, snap, conc, sequential=not settings.quick)
    ideal = _granted_by(ours.answered, base, default_burst(base), steps)
    seq_ideal = _granted_by(_answered(sequential), base, default_burst(base), steps)
    lines.append(ThrottleLine("halves 1.5-3 s, then recovers", "change", base, ideal, ours,
                              sequential, seq_ideal,
                              {"x_of_n_over_rate": ours.seconds * base / ours.answered}))

    shared_rate = SHARED_RATE if not settings.quick else 200
    args = ["--throttle-rps", f"{shared_rate:g}", "--throttle-burst", "5"]
    ours, sequential = await _case(args, snap, conc, dumps=SHARED,
                                   sequential=not settings.quick)
    lines.append(ThrottleLine(f"{SHARED} dumps at once, bucket burst 5", "shared", shared_rate,
                              ours.answered / shared_rate, ours, sequential,
                              _answered(sequential) / shared_rate))

    early = await _early(snap, conc, 2 if settings.quick else EARLY_RUNS)
    return _rows(lines, early), lines


async def _early(snap: Snapshot, conc: int, runs: int) -> tuple[Stats, Stats]:
    """Unthrottled dump seconds without and with one 429 on ``meta-data/``, in pairs."""
    clean: list[float] = []
    once: list[float] = []
    for i in range(runs + 1):  # pair 0 warms up
        for side, args in ((clean, []), (once, ["--fail-once", "/latest/meta-data/:429"])):
            report: dict[str, Any] = {}
            with _emulator(args, snap, report) as url:
                async with loopback_client(url) as warm:  # a fresh process answers slowly
                    for _ in range(WARM_UP):
                        await warm.get("meta-data/ami-id")
                seconds, failed, _, _ = await _our_dumps(url, 1, conc)
            if failed:
                raise RuntimeError(f"the early-429 dump failed {failed} paths")
            if i:
                side.append(seconds)
    return Stats.of(clean), Stats.of(once)


def _rows(lines: list[ThrottleLine], early: tuple[Stats, Stats]) -> list[Row]:
    rows: list[Row] = []

    def worst(kinds: tuple[str, ...], what: str, value: Any, unit: str,
              target: Target | None = None) -> None:
        chosen = [ln for ln in lines if ln.kind in kinds]
        if chosen:
            rows.append(Row("i", what, Stats.of(value(ln) for ln in chosen), unit, target,
                            note=f"{len(chosen)} cases; the median of them, max in spread"))

    worst(("bucket", "window"), "bucket and window shapes: time / (N / rate)",
          lambda ln: ln.x, "x", Target("<=", 1.1))
    worst(("bucket", "window"), "bucket and window shapes: 429s after the first second, % of N",
          lambda ln: 100 * ln.ours.late_429 / ln.ours.answered, "%", Target("<=", 5))
    worst(("bucket", "window"),
          "bucket and window shapes: 429s after the first second of throttling, % of N",
          lambda ln: 100 * ln.ours.settled_429 / ln.ours.answered, "%")
    worst(("drop",), "drop instead of 429: time / (N / rate)", lambda ln: ln.x, "x",
          Target("<=", 1.25))
    worst(("bucket", "window", "drop", "change", "shared"), "failed paths, every case",
          lambda ln: ln.ours.failed, "paths", Target("==", 0))
    for ln in lines:
        if ln.kind == "shared":
            rows.append(Row("i", f"{ln.case} at {ln.rate:g} req/s: time / (total N / rate)",
                            Stats.of([ln.x]), "x", Target("<=", 1.2)))
        if ln.kind == "change":
            rows.append(Row("i", f"rate {ln.case}: time / (time to grant N)",
                            Stats.of([ln.x]), "x"))
    clean, once = early
    added = Stats(tuple(b - a for a, b in zip(clean.values, once.values, strict=True)))
    rows.append(Row("i", "one early 429: seconds added to an unthrottled 901-path dump",
                    added, "s", Target("<=", 0.3)))
    rows.append(Row("i", "unthrottled 901-path dump", clean.scaled(1000), "ms"))
    return rows


def format_throttle(lines: list[ThrottleLine]) -> str:
    """Scenario i as a Markdown table: ours next to the retrying sequential crawl."""
    out = ["| case | rate | N | aioimds s | x | 429s | after 1 s | after 1 s of throttling | "
           "drops | failed | sequential s | x | 429s | drops | failed | load |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for ln in lines:
        o, s = ln.ours, ln.sequential
        seq = "| - | - | - | - | - " if s is None else (
            f"| {s.seconds:.2f} | {ln.seq_x:.2f} | {s.refused} | {s.dropped} | {s.failed} ")
        out.append(f"| {ln.case} | {ln.rate:g} | {o.answered} | {o.seconds:.2f} | {ln.x:.2f} "
                   f"| {o.refused} | {o.late_429} ({100 * o.late_429 / o.answered:.1f}%) "
                   f"| {o.settled_429} ({100 * o.settled_429 / o.answered:.1f}%) "
                   f"| {o.dropped} | {o.failed} {seq}| {o.load:.1f} |")
    return "\n".join(out)
