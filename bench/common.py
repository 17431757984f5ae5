"""Shared pieces of the benchmark scenarios: the trees, a client on loopback, timing."""

from __future__ import annotations

import asyncio
import glob
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NamedTuple

from aioimds import IMDSClient, IMDSConfig, Snapshot
from aioimds.crawl import DEFAULT_CONCURRENCY
from aioimds.emulator.generate import large_tree

__all__ = [
    "FIXTURES",
    "Settings",
    "Timed",
    "Tree",
    "critical_path",
    "fixture_trees",
    "large",
    "loopback_client",
    "our_dump",
]

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "tests", "fixtures")
"""The realistic trees kept in the repository (tests/fixtures/, see its NOTICE.md)."""
BENCH_TIMEOUT = 5.0
"""Seconds per attempt: well above any loopback answer, so no benchmark times out by chance."""


@dataclass(frozen=True)
class Settings:
    """What the runner was asked for."""

    repeat: int
    quick: bool
    concurrency: int = DEFAULT_CONCURRENCY


@dataclass(frozen=True)
class Tree:
    """A named tree to serve."""

    name: str
    snapshot: Snapshot


def fixture_trees() -> list[Tree]:
    """Every ``*.snapshot.json`` in :data:`FIXTURES` (none when the folder is absent)."""
    paths = sorted(glob.glob(os.path.join(FIXTURES, "*.snapshot.json")))
    return [Tree(os.path.basename(p).removesuffix(".snapshot.json"), Snapshot.load(p))
            for p in paths]


def large(interfaces: int = 40, associations: int = 40) -> Tree:
    """A generated tree (:func:`~aioimds.emulator.generate.large_tree`) named by its size."""
    snap = large_tree(interfaces, associations)
    return Tree(f"generated-{len(snap.subtree('/latest/'))}", snap)


def critical_path(snap: Snapshot) -> int:
    """Round trips no crawl can avoid: the token PUT, then one per level from ``/latest/``
    down to the deepest path (``/latest/meta-data/placement/region`` is 4)."""
    return 1 + max(len(p.strip("/").split("/")) for p in snap.subtree("/latest/"))


def loopback_client(url: str) -> IMDSClient:
    """A client for the emulator at ``url``, ignoring the environment and config files."""
    return IMDSClient(IMDSConfig(endpoint=url, timeout=BENCH_TIMEOUT))


class Timed(NamedTuple):
    """One dump: wall-clock seconds, this process's CPU seconds, and what it got."""

    wall: float
    cpu: float
    snapshot: Snapshot


async def our_dump(url: str, concurrency: int) -> Timed:
    """``dump()`` on a fresh client (token PUT included), timed."""
    async with loopback_client(url) as imds:
        start, cpu = time.perf_counter(), time.process_time()
        snap = await imds.dump(concurrency=concurrency)
        return Timed(time.perf_counter() - start, time.process_time() - cpu, snap)


async def timed_workers(worker: Callable[[int], Awaitable[None]], count: int,
                        concurrency: int) -> float:
    """Seconds for ``count`` calls shared by ``concurrency`` workers (``worker(n)`` makes n
    calls), after an untimed round of one call each (the token PUT, every connection opened)."""
    await asyncio.gather(*(worker(1) for _ in range(concurrency)))
    shares = [count // concurrency + (1 if i < count % concurrency else 0)
              for i in range(concurrency)]
    start = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in shares))
    return time.perf_counter() - start
