"""Speculative dumps: the same snapshot as a plain crawl, only listed paths recorded, guesses
counted, and no guessing while the service throttles."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from conftest import fixture_params

from aioimds import IMDSClient, Record, Snapshot
from aioimds.crawl import STALL_FAILURES, crawl
from aioimds.emulator import Emulator, PathFault, default_snapshot
from aioimds.speculate import START

TREES = [*fixture_params(), pytest.param(None, id="default")]


def gets(emu: Emulator) -> Counter[str]:
    return Counter(t.path for t in emu.counters.trace if t.method == "GET")


@pytest.mark.parametrize("path", TREES)
@pytest.mark.parametrize("concurrency", [4, 32])
async def test_a_speculative_dump_equals_a_plain_one_byte_for_byte(
        path: Path | None, concurrency: int) -> None:
    tree = default_snapshot() if path is None else Snapshot.load(path)
    async with Emulator(tree) as emu, IMDSClient(endpoint=emu.url) as imds:
        plain = await imds.dump(concurrency=concurrency, partial=True, speculate=False)
        emu.counters.reset()
        result = await imds.dump(concurrency=concurrency, partial=True)
        asked = gets(emu)
    assert plain.complete and result.complete
    assert result.snapshot.dumps() == plain.snapshot.dumps()
    assert plain.snapshot == tree.subtree("/latest/")
    assert plain.speculation.sent == 0
    stats = result.speculation
    assert stats.sent > 0 and stats.wasted == stats.sent - stats.kept
    # Every path asked once: a listed guess is never asked again, in flight or answered.
    assert max(asked.values()) == 1
    assert sum(asked.values()) == len(plain.snapshot) + stats.wasted


def unlisted_tree() -> Snapshot:
    """Served paths that speculation asks for but no listing names: ``ami-id`` and all of
    ``placement/``; ``profile`` and the rest of START are absent (404)."""
    return Snapshot({
        "/latest/": Record(b"meta-data"),
        "/latest/meta-data/": Record(b"instance-id\nservices/"),
        "/latest/meta-data/instance-id": Record(b"i-0123456789abcdef0"),
        "/latest/meta-data/services/": Record(b"domain"),
        "/latest/meta-data/services/domain": Record(b"amazonaws.com"),
        "/latest/meta-data/ami-id": Record(b"ami-unlisted"),
        "/latest/meta-data/placement/": Record(b"availability-zone"),
        "/latest/meta-data/placement/availability-zone": Record(b"xx-unlisted-1a"),
    })


async def test_a_path_served_but_not_listed_is_never_recorded() -> None:
    tree = unlisted_tree()
    async with Emulator(tree) as emu, IMDSClient(endpoint=emu.url) as imds:
        result = await imds.dump(partial=True)
        asked = gets(emu)
    listed = ["/latest/", "/latest/meta-data/", "/latest/meta-data/instance-id",
              "/latest/meta-data/services/", "/latest/meta-data/services/domain"]
    assert result.complete and sorted(result.snapshot) == listed
    # The guesses went out (and were answered 200 or 404) but nothing of them was recorded.
    assert asked["/latest/meta-data/ami-id"] == 1
    assert asked["/latest/meta-data/placement/availability-zone"] == 1
    assert asked["/latest/meta-data/profile"] == 1
    # All START guesses go out with /latest/ (concurrency 32 > len(START)); the four listed
    # ones are kept, every other one is wasted, and nothing else is guessed.
    assert result.speculation.sent == len(START)
    assert result.speculation.kept == 4
    assert result.speculation.wasted == len(START) - 4


async def test_a_failed_guess_is_fetched_normally_once_listed() -> None:
    ami = "/latest/meta-data/ami-id"
    tree = Snapshot({"/latest/": Record(b"meta-data"),
                     "/latest/meta-data/": Record(b"ami-id"), ami: Record(b"ami-0abc")})
    async with Emulator(tree) as emu, IMDSClient(endpoint=emu.url) as imds:
        emu.faults.path_faults = [PathFault(ami, status=503, count=2)]  # both guess attempts
        result = await imds.dump(partial=True)
        asked = gets(emu)
    assert result.complete and result.snapshot == tree
    assert asked[ami] == 3  # two guess attempts, then the listed fetch
    assert result.speculation.kept == 1  # meta-data/ only


async def test_guesses_that_time_out_do_not_stop_the_crawl() -> None:
    # More than STALL_FAILURES guesses get no answer: they must not count as a stall.
    tree = unlisted_tree()
    held = [f"/latest/{rel}" for rel in START
            if f"/latest/{rel}" not in tree and not rel.endswith("/")]
    assert len(held) > STALL_FAILURES
    async with Emulator(tree) as emu:
        emu.faults.path_faults = [PathFault(p, delay=30, count=10) for p in held]
        async with IMDSClient(endpoint=emu.url, timeout=0.2) as imds:
            result = await imds.dump(partial=True)
    assert result.complete and len(result.snapshot) == 5
    assert result.speculation.kept == 4


async def test_no_guess_is_sent_while_the_service_throttles() -> None:
    snap = default_snapshot().subtree()
    guessed: list[str] = []
    throttled = False

    async def fetch(path: str) -> Record:
        await asyncio.sleep(0.01)
        return snap.get(path, Record(b"", 404))

    async def guess(path: str) -> Record:
        nonlocal throttled
        guessed.append(path)
        throttled = True  # the first guess meets a 429: the limiter reports throttling
        await asyncio.sleep(0)
        return snap.get(path, Record(b"", 404))

    # The other workers would take the next guesses while /latest/ is in flight: they must
    # drop every queued guess instead, and no new one is made.
    result = await crawl(fetch, concurrency=4, guess=guess, allowed=lambda: not throttled)
    assert result.complete and result.snapshot == snap
    assert guessed == ["/latest/meta-data/"]
    assert result.speculation.sent == 1 and result.speculation.kept == 1


async def test_a_guess_answered_before_its_listing_is_kept_and_not_asked_again() -> None:
    tree = default_snapshot()
    async with Emulator(tree) as emu, IMDSClient(endpoint=emu.url) as imds:
        # meta-data/ answers last: the guesses below it have landed when it names them.
        emu.faults.path_faults = [PathFault("/latest/meta-data/", delay=0.3)]
        result = await imds.dump(partial=True, speculate=True)
        asked = gets(emu)
    assert result.complete and result.snapshot == tree.subtree("/latest/")
    assert max(asked.values()) == 1
    listed_start = [f"/latest/{rel}" for rel in START if f"/latest/{rel}" in tree]
    assert result.speculation.kept >= len(listed_start) and result.speculation.wasted == 0


async def test_a_throttled_speculative_dump_equals_a_plain_one() -> None:
    tree = default_snapshot()
    async with Emulator(tree) as emu, IMDSClient(endpoint=emu.url) as imds:
        emu.faults.throttle_rps = 100.0  # burst 10: the first round alone meets 429s
        result = await imds.dump(partial=True)
        assert emu.counters.total(status=429) > 0
    assert result.complete and result.snapshot == tree.subtree("/latest/")


async def test_the_dump_does_not_wait_for_a_guess_no_listing_names() -> None:
    tree = unlisted_tree()
    async with Emulator(tree) as emu:
        emu.faults.path_faults = [PathFault("/latest/meta-data/ami-id", delay=30)]
        async with IMDSClient(endpoint=emu.url, timeout=20) as imds:
            # Done long before the held guess could answer or time out: it is cancelled.
            result = await asyncio.wait_for(imds.dump(partial=True), 10)
    assert result.complete and len(result.snapshot) == 5
    assert "/latest/meta-data/ami-id" not in result.snapshot


async def test_a_guess_its_listing_already_refuted_is_never_sent() -> None:
    snap = unlisted_tree()
    sent: list[str] = []

    async def fetch(path: str) -> Record:
        await asyncio.sleep(0.05 if path == "/latest/" else 0)
        return snap.get(path, Record(b"", 404))

    async def guess(path: str) -> Record:
        sent.append(path)
        return await fetch(path)

    # Two workers: /latest/ is slow, so the guess of meta-data/ lands first; its listing
    # names neither ami-id nor placement/ nor the rest of START: those are dropped unsent,
    # while the START paths it names are still worth guessing.
    result = await crawl(fetch, concurrency=2, guess=guess)
    assert result.complete and sorted(result.snapshot) == [
        "/latest/", "/latest/meta-data/", "/latest/meta-data/instance-id",
        "/latest/meta-data/services/", "/latest/meta-data/services/domain"]
    assert sent[0] == "/latest/meta-data/" and set(sent) <= set(result.snapshot)
    assert result.speculation.sent == len(sent) > 1 and result.speculation.wasted == 0


async def test_the_guesses_are_logged_at_debug_level(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="aioimds")
    async with Emulator(unlisted_tree()) as emu, IMDSClient(endpoint=emu.url) as imds:
        await imds.dump()
    wasted = len(START) - 4
    assert f"dump: {len(START)} guesses sent, 4 kept, {wasted} wasted" in caplog.text


async def test_a_guess_never_waits_for_a_slot_or_a_paced_turn() -> None:
    from aioimds.errors import IMDSError
    from aioimds.pacing import AdaptiveLimit
    from aioimds.speculate import GuessSlots

    shared = AdaptiveLimit(2)
    slots = GuessSlots(shared)
    first = slots.try_acquire()
    assert first is not None and shared.in_flight == 1
    slots.release(first, throttled=True, status=429)  # the service throttles: paced from now
    assert slots.throttling and slots.try_acquire() is None
    with pytest.raises(IMDSError, match="not sent"):
        await slots.acquire()
    assert shared.in_flight == 0
