"""Cancellation and life cycle: no task, connection or session outlives what it belongs to.

The emulator runs in a thread with its own event loop (``threaded_emulator``), so the test's
loop holds only the client's tasks and ``asyncio.all_tasks()`` shows any the client leaks.
Warnings are errors here; on top of that every test collects garbage inside
``no_resource_warnings()`` and fails on any ResourceWarning ("Unclosed client session",
"unclosed transport"). Each test says how it was checked to fail on a client without the
protection (a ``sitecustomize.py`` on ``PYTHONPATH`` patching aioimds from outside).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aioimds import IMDSClient, IMDSNotFoundError
from aioimds.emulator import Emulator, Faults, default_snapshot

TREE = default_snapshot().subtree()
REGION = "meta-data/placement/region"
REGION_PATH = "/latest/" + REGION
GUARD = 10.0
"""Seconds after which a test gives up on a client that hangs."""


@contextlib.contextmanager
def threaded_emulator(**kwargs: Any) -> Iterator[Emulator]:
    """An :class:`Emulator` serving from a thread with its own event loop."""
    loop = asyncio.new_event_loop()
    emu = Emulator(**kwargs)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(emu.start(), loop).result(5)
    try:
        yield emu
    finally:
        asyncio.run_coroutine_threadsafe(emu.stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@contextlib.contextmanager
def no_resource_warnings() -> Iterator[None]:
    """Fail on any ResourceWarning emitted inside, garbage collection included."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []


def other_tasks() -> set[asyncio.Task[Any]]:
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]


def connections(imds: IMDSClient) -> tuple[int, int]:
    """Connections the client's connector holds: (in use, idle) (a private peek)."""
    assert imds._transport is not None
    connector: Any = imds._transport._session.connector
    return len(connector._acquired), sum(len(c) for c in connector._conns.values())


def open_fds() -> int | None:
    """File descriptors this process has open (Linux), or None elsewhere."""
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None


async def until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` until it holds (at most GUARD seconds)."""
    for _ in range(int(GUARD / 0.002)):
        if condition():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("condition never held")


async def settle() -> None:
    for _ in range(3):  # cancelled tasks finish within a few loop turns
        await asyncio.sleep(0)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with threaded_emulator(latency=0.005) as emulator:
        yield emulator


# -- cancelling a dump -------------------------------------------------------------------------
# Checked by a sitecustomize giving crawl.py an asyncio whose ensure_future shields the worker
# tasks (so cancelling the crawl does not cancel them): "mid-crawl" and "by-timeout" fail with
# worker tasks left running, as does the three-loop test below ("at-once" cancels before any
# worker exists).


async def _cancel_at_once(task: asyncio.Task[Any], emu: Emulator) -> None:
    task.cancel()


async def _cancel_mid_crawl(task: asyncio.Task[Any], emu: Emulator) -> None:
    await until(lambda: emu.counters.total("GET") >= 30)
    task.cancel()


async def _cancel_by_timeout(task: asyncio.Task[Any], emu: Emulator) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.shield(task), 0.03)
    task.cancel()


CANCEL_POINTS = [("at-once", _cancel_at_once), ("mid-crawl", _cancel_mid_crawl),
                 ("by-timeout", _cancel_by_timeout)]


@pytest.mark.parametrize("cancel", [c[1] for c in CANCEL_POINTS], ids=[c[0] for c in CANCEL_POINTS])
async def test_a_cancelled_dump_leaks_nothing_and_the_client_dumps_again(emu, cancel) -> None:
    with no_resource_warnings():
        async with IMDSClient(endpoint=emu.url) as imds:
            before = other_tasks()
            task = asyncio.ensure_future(imds.dump(concurrency=8))
            await cancel(task, emu)
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, GUARD)
            await settle()
            assert other_tasks() == before
            assert imds._tokens is not None and not imds._tokens._lock.locked()
            in_use, idle = connections(imds)
            assert in_use == 0 and idle <= 8 + 1  # the crawl's and the token PUT's
            assert await asyncio.wait_for(imds.dump(concurrency=8), GUARD) == TREE
            assert connections(imds)[0] == 0
        assert other_tasks() == before


# -- cancelling during the token PUT -----------------------------------------------------------
# These drive the pipeline below the single flight (``_fetch``, as a dump does): through get()
# the cancelled callers would leave the flight, and the flight its PUT, running
# (tests/test_coalesce.py).
# Checked by a sitecustomize replacing TokenSession.get with one that takes the lock by
# acquire() and releases it only after a successful PUT (no try/finally): both tests hang on
# the lock until the GUARD and fail with TimeoutError.


async def test_cancelling_every_waiter_of_a_held_token_put_leaves_a_working_client() -> None:
    with threaded_emulator(faults=Faults(hold_token_put=True)) as emu, no_resource_warnings():
        async with IMDSClient(endpoint=emu.url, timeout=30) as imds:
            before = other_tasks()
            waiters = [asyncio.ensure_future(imds._fetch(REGION_PATH)) for _ in range(20)]
            await until(lambda: emu.counters.token_puts == 1)
            for task in waiters:
                task.cancel()
            results = await asyncio.gather(*waiters, return_exceptions=True)
            assert all(isinstance(r, asyncio.CancelledError) for r in results)
            await settle()
            assert other_tasks() == before
            assert imds._tokens is not None and imds._tokens._token is None
            assert not imds._tokens._lock.locked()
            emu.faults.hold_token_put = False
            assert await asyncio.wait_for(imds.get(REGION), GUARD) == "ap-northeast-1"
            assert imds.token_puts == 2 and connections(imds) == (0, 1)


async def test_cancelling_the_waiter_that_puts_hands_the_put_to_the_next_one() -> None:
    with threaded_emulator(faults=Faults(latency=0.2)) as emu, no_resource_warnings():
        async with IMDSClient(endpoint=emu.url, timeout=5) as imds:
            first = asyncio.ensure_future(imds._fetch(REGION_PATH))
            await asyncio.sleep(0.05)  # first holds the lock, its PUT in flight
            others = [asyncio.ensure_future(imds._fetch(REGION_PATH)) for _ in range(10)]
            await asyncio.sleep(0.05)
            first.cancel()
            got = await asyncio.wait_for(asyncio.gather(*others), GUARD)
            assert [r.body for r in got] == [b"ap-northeast-1"] * 10 and first.cancelled()
            assert imds.token_puts == 2 and emu.counters.token_puts == 2


# -- a body cut short by cancellation ----------------------------------------------------------


async def test_a_request_cancelled_mid_answer_never_corrupts_the_next_one(emu) -> None:
    with no_resource_warnings():
        async with IMDSClient(endpoint=emu.url) as imds:
            for delay in (0.0, 0.001, 0.003, 0.006, 0.01):
                task = asyncio.ensure_future(imds.get_bytes("user-data"))
                await asyncio.sleep(delay)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                assert await imds.get(REGION) == "ap-northeast-1"
                assert await imds.get_bytes("user-data") == TREE["/latest/user-data"].body


# -- reopening, other loops, closing twice -----------------------------------------------------
# Checked by a sitecustomize making IMDSClient.close close the transport but keep it (so open()
# is a no-op on a closed session): every test here fails ("IMDSClient is not open" is not
# raised; aiohttp's "Session is closed" is). And by one making Transport.close a no-op: they
# fail on "Unclosed client session" / "Unclosed connector".


def test_a_client_moves_between_three_event_loops_through_a_cancelled_dump(emu) -> None:
    imds = IMDSClient(endpoint=emu.url)

    async def cancelled_dump() -> None:
        async with imds:
            task = asyncio.ensure_future(imds.dump())
            await asyncio.sleep(0.02)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await settle()
        assert other_tasks() == set()

    async def failing_get() -> None:
        with pytest.raises(IMDSNotFoundError):
            async with imds:
                await imds.get("meta-data/no-such-key")
        assert other_tasks() == set()

    async def full_dump() -> object:
        async with imds:
            snap = await imds.dump()
        await settle()
        assert other_tasks() == set()
        return snap

    with no_resource_warnings():
        asyncio.run(cancelled_dump())
        asyncio.run(failing_get())
        assert asyncio.run(full_dump()) == TREE
        assert imds._transport is None


async def test_closing_twice_concurrently_and_reopening_fifty_times_leaks_no_socket(emu) -> None:
    imds = IMDSClient(endpoint=emu.url)
    await imds.close()  # never opened: harmless
    fds = open_fds()
    with no_resource_warnings():
        for _ in range(50):
            await imds.open()
            await imds.open()  # open twice: a no-op
            assert await imds.get(REGION) == "ap-northeast-1"
            await asyncio.gather(imds.close(), imds.close())
        await settle()
    if fds is not None:
        assert (open_fds() or 0) <= fds + 2  # the emulator thread's own sockets may move
    with pytest.raises(RuntimeError, match="not open"):
        await imds.get(REGION)
    assert imds.token_puts == 0 and repr(imds).endswith("closed)")
