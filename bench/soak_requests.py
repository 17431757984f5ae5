"""Soak: 50,000 get()/list() calls against a faulty emulator: no lost or wrong value, flat RSS.

The emulator (a separate ``aioimds serve`` process) answers 5% of GETs with 500 or 503 and
closes 2% of connections without an answer (seeded). One ``IMDSClient`` with default settings
(3 attempts, 1 s timeout) is shared by ``--concurrency`` coroutines, each making calls drawn
from a seeded mix over the default tree: ``get`` of text leaves, ``get_bytes`` of binary ones,
``list`` of listings and ``get`` of a path that does not exist (404). Every call either returns
exactly the value the tree holds (``IMDSNotFoundError`` for the absent path) or raises a typed
``IMDSError``; anything else (a wrong value, an exception of another type, a call that never
ends) is "lost" and must never happen. The client's RSS (``VmRSS`` of /proc/self/status) after
the warm-up and at the end must be within 10%. Bounded: stops after ``--requests`` calls or
``--seconds``, whichever comes first.

    python -m bench.soak_requests [--requests 50000] [--seconds 120] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import unquote

from aioimds import IMDSClient, IMDSError, IMDSNotFoundError
from aioimds.emulator import default_snapshot
from aioimds.paths import ROOT, parse_listing, request_path

from .server import served

FAULTS = ["--error-rate", "0.05", "--drop-rate", "0.02", "--seed", "3"]
WARM_UP = 5_000
"""Calls before the first RSS reading: the connection pool, caches and the token are settled."""
RSS_TOLERANCE = 0.10
ABSENT = "meta-data/no-such-key"
CALL_GUARD = 30.0
"""Seconds after which a call counts as lost (it never ended)."""


@dataclass(frozen=True)
class Call:
    """One kind of call and the exact value it must give back."""

    method: str  # "get", "get_bytes" or "list"
    path: str  # relative to latest/, decoded
    expected: object  # the value, or IMDSNotFoundError


@dataclass
class Tally:
    correct: int = 0
    typed: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.correct + sum(self.typed.values()) + len(self.lost)


def known_calls() -> list[Call]:
    """A call for every path of the default tree whose value is known, and one absent path."""
    calls = [Call("get", ABSENT, IMDSNotFoundError)]
    for key, rec in default_snapshot().subtree().items():
        rel = unquote(key[len(ROOT):])
        if request_path(rel) != key:
            continue  # not reachable by its decoded name (none in the default tree)
        if key.endswith("/"):
            calls.append(Call("list", rel, parse_listing(rec.body, key)))
        elif rec.text() is not None:
            calls.append(Call("get", rel, rec.text()))
        else:
            calls.append(Call("get_bytes", rel, rec.body))
    return calls


def rss_kib() -> int:
    """The resident set size of this process in KiB (Linux), after a garbage collection."""
    gc.collect()
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


async def one(imds: IMDSClient, call: Call, tally: Tally) -> None:
    try:
        got = await asyncio.wait_for(getattr(imds, call.method)(call.path), CALL_GUARD)
    except IMDSNotFoundError as exc:
        if call.expected is IMDSNotFoundError:
            tally.correct += 1
        else:
            tally.lost.append(f"{call.method}({call.path!r}): unexpected {exc!r}")
    except IMDSError as exc:
        tally.typed[type(exc).__name__] += 1
    except Exception as exc:  # anything untyped is exactly what counts as lost
        tally.lost.append(f"{call.method}({call.path!r}): {exc!r}")
    else:
        if got == call.expected:
            tally.correct += 1
        else:
            tally.lost.append(f"{call.method}({call.path!r}) gave {got!r:.80}")


async def soak(url: str, total: int, seconds: float, concurrency: int) -> tuple[Tally, int, int]:
    calls = known_calls()
    rng = random.Random(5)
    tally = Tally()
    started = time.monotonic()
    issued = 0
    rss: list[int] = []

    async def worker() -> None:
        nonlocal issued
        while issued < total and time.monotonic() - started < seconds:
            issued += 1
            if issued == WARM_UP:
                rss.append(rss_kib())
            await one(imds, rng.choice(calls), tally)

    async with IMDSClient(endpoint=url) as imds:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        rss.append(rss_kib())
    return tally, rss[0] if len(rss) > 1 else rss[-1], rss[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=50_000)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()
    start = time.monotonic()
    with served(*FAULTS) as url:
        tally, warm, end = asyncio.run(soak(url, args.requests, args.seconds, args.concurrency))
    elapsed = time.monotonic() - start
    growth = (end - warm) / warm
    typed = ", ".join(f"{n} {name}" for name, n in tally.typed.most_common()) or "none"
    print(f"calls: {tally.done} in {elapsed:.1f} s ({tally.done / elapsed:.0f}/s), faults "
          f"{' '.join(FAULTS)}, concurrency {args.concurrency}")
    print(f"exact values: {tally.correct}; typed IMDSError: {sum(tally.typed.values())} "
          f"({typed}); lost or wrong: {len(tally.lost)}")
    print(f"client RSS: {warm} KiB after {WARM_UP} calls, {end} KiB at the end "
          f"({growth:+.1%}; bound {RSS_TOLERANCE:.0%})")
    for line in tally.lost[:10]:
        print(f"lost: {line}", file=sys.stderr)
    ok = not tally.lost and abs(growth) <= RSS_TOLERANCE and tally.done >= args.requests
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
