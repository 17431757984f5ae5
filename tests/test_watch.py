"""The watchers (aioimds.typed.watch) against the emulator's scheduled notices and faults."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from aioimds import IMDSClient, IMDSConfig, IMDSDisabledError
from aioimds.emulator import Emulator, PathFault
from aioimds.typed.watch import (
    LIFECYCLE_INTERVAL,
    MAINTENANCE_INTERVAL,
    REBALANCE_INTERVAL,
    SPOT_INTERVAL,
    Watcher,
    watch_maintenance_events,
    watch_rebalance_recommendation,
    watch_spot_interruption,
    watch_target_lifecycle_state,
)

SPOT = "/latest/meta-data/spot/instance-action"
REBALANCE = "/latest/meta-data/events/recommendations/rebalance"
LIFECYCLE = "/latest/meta-data/autoscaling/target-lifecycle-state"
FAST = 0.05
"""Poll interval of the tests that do not measure timing, in seconds."""


@pytest.fixture
async def imds(imds_emulator: Emulator) -> AsyncIterator[IMDSClient]:
    """A client with a short timeout and few attempts, so failing polls end quickly."""
    config = IMDSConfig(endpoint=imds_emulator.url, timeout=0.5, attempts=2)
    async with IMDSClient(config) as client:
        yield client


async def next_within(watcher: Watcher[Any], seconds: float) -> Any:
    return await asyncio.wait_for(watcher.__anext__(), seconds)


def client_tasks() -> set[asyncio.Task[Any]]:
    """The tasks running besides the test and the emulator's connection handlers."""
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()
            and "RequestHandler.start" not in t.get_coro().__qualname__}


async def assert_nothing_within(watcher: Watcher[Any], seconds: float) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await next_within(watcher, seconds)


def test_default_intervals_are_the_documented_values() -> None:
    assert (SPOT_INTERVAL, REBALANCE_INTERVAL, MAINTENANCE_INTERVAL, LIFECYCLE_INTERVAL) == (
        5.0, 5.0, 60.0, 5.0)


@pytest.mark.parametrize("interval", [0, -1, float("inf"), float("nan")])
def test_interval_must_be_positive_and_finite(interval: float) -> None:
    with pytest.raises(ValueError, match="interval"):
        watch_spot_interruption(IMDSClient(IMDSConfig(endpoint="http://127.0.0.1:9")),
                                interval=interval)


@pytest.mark.usefixtures("virtual_time")
async def test_spot_notice_2_s_ahead_is_seen_within_interval_plus_1_s_exactly_once(
    imds_emulator: Emulator, imds_client: IMDSClient
) -> None:
    interval = 0.2
    watcher = watch_spot_interruption(imds_client, interval=interval)
    start = asyncio.get_running_loop().time()
    imds_emulator.schedule_spot_action(2.0, "terminate")
    notice = await next_within(watcher, 2.0 + interval + 1.0)
    elapsed = asyncio.get_running_loop().time() - start
    assert 1.9 <= elapsed <= 2.0 + interval + 1.0
    assert notice.action == "terminate"
    expected = datetime.now(timezone.utc) + timedelta(minutes=2)
    assert abs((notice.time - expected).total_seconds()) < 5
    await assert_nothing_within(watcher, 3 * interval)


@pytest.mark.usefixtures("virtual_time")
async def test_no_notice_polls_at_the_interval_and_yields_nothing(
    imds_emulator: Emulator, imds_client: IMDSClient
) -> None:
    watcher = watch_spot_interruption(imds_client, interval=0.1)
    await assert_nothing_within(watcher, 0.55)
    gets = [t for t in imds_emulator.counters.trace if t.path == SPOT]
    assert 4 <= len(gets) <= 7 and {t.status for t in gets} == {404}


@pytest.mark.usefixtures("virtual_time")
@pytest.mark.parametrize("status", [429, 500, 503])
async def test_failed_polls_are_logged_once_and_polling_goes_on(
    imds_emulator: Emulator, imds: IMDSClient, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    imds_emulator.faults.path_faults.append(PathFault(SPOT, status=status, count=4))
    imds_emulator.schedule_spot_action(0, "stop")
    with caplog.at_level(logging.DEBUG, logger="aioimds.watch"):
        notice = await next_within(watch_spot_interruption(imds, interval=FAST), 5)
    assert notice.action == "stop"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and SPOT in warnings[0].getMessage()
    assert str(status) in warnings[0].getMessage()
    assert any("answered again after 2 failed poll(s)" in r.getMessage() for r in caplog.records)


@pytest.mark.usefixtures("virtual_time")
async def test_revoked_tokens_and_dropped_connections_are_ridden_through(
    imds_emulator: Emulator, imds: IMDSClient
) -> None:
    watcher = watch_spot_interruption(imds, interval=FAST)
    await assert_nothing_within(watcher, 0.1)
    imds_emulator.revoke_tokens()
    imds_emulator.faults.drop_rate = 1.0
    await assert_nothing_within(watcher, 0.3)
    imds_emulator.faults.drop_rate = 0.0
    imds_emulator.schedule_spot_action(0, "hibernate")
    assert (await next_within(watcher, 5)).action == "hibernate"
    assert imds_emulator.counters.token_puts >= 2


@pytest.mark.usefixtures("virtual_time")
async def test_a_malformed_notice_is_logged_and_the_next_good_one_yielded(
    imds_emulator: Emulator, imds_client: IMDSClient, caplog: pytest.LogCaptureFixture
) -> None:
    imds_emulator.set_leaf(SPOT, '{"action": "terminate"')
    watcher = watch_spot_interruption(imds_client, interval=FAST)

    logged = asyncio.Event()

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if SPOT in record.getMessage():
                logged.set()

    # Until the warning, however long the first polls take (no fixed window a slow machine
    # can miss), with the watcher waiting for a notice all along.
    seen = Seen()
    logging.getLogger("aioimds.watch").addHandler(seen)
    try:
        with caplog.at_level(logging.WARNING, logger="aioimds.watch"):
            notice = asyncio.ensure_future(watcher.__anext__())
            await asyncio.wait_for(logged.wait(), 10)
            assert not notice.done()
    finally:
        logging.getLogger("aioimds.watch").removeHandler(seen)
    assert [r.getMessage() for r in caplog.records if SPOT in r.getMessage()]
    imds_emulator.schedule_spot_action(0, "terminate")
    assert (await asyncio.wait_for(notice, 10)).action == "terminate"


@pytest.mark.usefixtures("virtual_time")
async def test_a_disabled_client_ends_the_iteration(imds_emulator: Emulator) -> None:
    async with IMDSClient(IMDSConfig(endpoint=imds_emulator.url, disabled=True)) as imds:
        with pytest.raises(IMDSDisabledError):
            await next_within(watch_spot_interruption(imds, interval=FAST), 2)


@pytest.mark.usefixtures("virtual_time")
async def test_rebalance_recommendation_is_yielded_once(
    imds_emulator: Emulator, imds_client: IMDSClient
) -> None:
    watcher = watch_rebalance_recommendation(imds_client, interval=FAST)
    imds_emulator.schedule_rebalance(0.2)
    notice = await next_within(watcher, 2)
    assert abs((notice.notice_time - datetime.now(timezone.utc)).total_seconds()) < 5
    await assert_nothing_within(watcher, 0.2)
    imds_emulator.set_leaf(REBALANCE, '{"noticeTime": "2030-01-01T00:00:00Z"}')
    again = await next_within(watcher, 2)  # a new noticeTime is a new recommendation
    assert again.notice_time == datetime(2030, 1, 1, tzinfo=timezone.utc)


@pytest.mark.usefixtures("virtual_time")
async def test_each_maintenance_event_is_yielded_once_by_event_id(
    imds_emulator: Emulator, imds_client: IMDSClient
) -> None:
    watcher = watch_maintenance_events(imds_client, interval=FAST)
    await assert_nothing_within(watcher, 0.1)  # the default tree has "[]"
    first = imds_emulator.schedule_maintenance_event(0, "system-reboot")
    second = imds_emulator.schedule_maintenance_event(0.2, "instance-stop")
    got = [await next_within(watcher, 2), await next_within(watcher, 2)]
    assert [(e.event_id, e.code) for e in got] == [(first, "system-reboot"),
                                                    (second, "instance-stop")]
    imds_emulator.schedule_maintenance_event(0, "system-reboot", event_id=first,
                                             state="canceled")
    await assert_nothing_within(watcher, 0.2)


@pytest.mark.usefixtures("virtual_time")
async def test_lifecycle_state_is_yielded_at_start_and_at_every_change(
    imds_emulator: Emulator, imds_client: IMDSClient
) -> None:
    watcher = watch_target_lifecycle_state(imds_client, interval=FAST)
    assert await next_within(watcher, 2) == "InService"
    await assert_nothing_within(watcher, 0.15)
    imds_emulator.schedule_lifecycle_state(0.1, "Standby")
    assert await next_within(watcher, 2) == "Standby"
    imds_emulator.schedule_lifecycle_state(0, "InService")
    assert await next_within(watcher, 2) == "InService"


@pytest.mark.usefixtures("virtual_time")
async def test_lifecycle_state_yields_nothing_while_absent(
    imds_emulator: Emulator, imds_client: IMDSClient
) -> None:
    imds_emulator.remove(LIFECYCLE)
    watcher = watch_target_lifecycle_state(imds_client, interval=FAST)
    await assert_nothing_within(watcher, 0.15)
    imds_emulator.schedule_lifecycle_state(0, "Terminated")
    assert await next_within(watcher, 2) == "Terminated"


@pytest.mark.usefixtures("virtual_time")
async def test_cancelling_a_watching_task_leaves_nothing_pending(
    imds_emulator: Emulator, imds_client: IMDSClient
) -> None:
    seen: list[object] = []

    async def consume() -> None:
        async for notice in watch_spot_interruption(imds_client, interval=FAST):
            seen.append(notice)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == []
    # A request the watcher had in flight finishes on its own (single flight keeps the answer
    # for its other callers); then nothing of the watcher is left.
    for _ in range(100):
        if not client_tasks():
            break
        await asyncio.sleep(FAST)
    assert client_tasks() == set()


@pytest.mark.usefixtures("virtual_time")
async def test_breaking_out_of_the_loop_leaves_nothing_pending(
    imds_emulator: Emulator, imds_client: IMDSClient
) -> None:
    imds_emulator.schedule_spot_action(0)
    async for notice in watch_spot_interruption(imds_client, interval=FAST):
        assert notice.action == "terminate"
        break
    assert client_tasks() == set()
