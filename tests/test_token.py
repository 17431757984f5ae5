"""The token session (aioimds.token): expiry, margin, single-flight, cancellation, fallback.

These drive TokenSession with an in-process fetch coroutine and a fake clock; the same rules are
checked over HTTP against the emulator in test_client.py.
"""

from __future__ import annotations

import asyncio

import pytest

from aioimds import IMDSTokenError, IMDSTokenTimeoutError
from aioimds.token import (
    TOKEN_REFRESH_MARGIN,
    V1_FALLBACK_SECONDS,
    TokenSession,
    refresh_margin,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Fetcher:
    """Counts PUTs; hands out token-1, token-2, ... with the granted TTL."""

    def __init__(self, granted: int = 21600, delay: float = 0.0,
                 error: Exception | None = None) -> None:
        self.calls: list[int] = []
        self.granted = granted
        self.delay = delay
        self.error = error

    async def __call__(self, ttl: int, tries: object = None) -> tuple[str, int]:
        self.calls.append(ttl)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return f"token-{len(self.calls)}", self.granted


def test_defaults() -> None:
    assert TOKEN_REFRESH_MARGIN == 60.0
    assert V1_FALLBACK_SECONDS == 300.0
    assert refresh_margin(21600) == 60.0
    assert refresh_margin(2) == 0.5


async def test_thousand_waiters_cause_one_put() -> None:
    fetch = Fetcher(delay=0.01)
    session = TokenSession(fetch, ttl=21600)
    tokens = await asyncio.gather(*(session.get() for _ in range(1000)))
    assert set(tokens) == {"token-1"}
    assert fetch.calls == [21600]


async def test_echoed_ttl_wins_and_refresh_happens_a_margin_before_expiry() -> None:
    clock = Clock()
    fetch = Fetcher(granted=100)  # asked 21600, server granted 100 -> margin 25 s
    session = TokenSession(fetch, ttl=21600, clock=clock)
    assert await session.get() == "token-1"
    clock.now += 74.9
    assert await session.get() == "token-1"
    clock.now += 0.2  # past 100 - 25
    assert await session.get() == "token-2"
    assert len(fetch.calls) == 2


async def test_invalidate_forgets_only_that_token() -> None:
    fetch = Fetcher()
    session = TokenSession(fetch, ttl=60)
    first = await session.get()
    session.invalidate("some-older-token")
    assert await session.get() == first
    session.invalidate(first)
    assert await session.get() == "token-2"


async def test_cancelled_leader_leaves_lock_free_and_no_token_half_set() -> None:
    fetch = Fetcher(delay=10)
    session = TokenSession(fetch, ttl=60)
    leader = asyncio.ensure_future(session.get())
    await asyncio.sleep(0.01)
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert not session._lock.locked()
    assert session._token is None
    fetch.delay = 0
    assert await session.get() == "token-2"


async def test_cancelled_waiter_does_not_break_the_others() -> None:
    fetch = Fetcher(delay=0.05)
    session = TokenSession(fetch, ttl=60)
    tasks = [asyncio.ensure_future(session.get()) for _ in range(10)]
    await asyncio.sleep(0.01)
    tasks[3].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[3], asyncio.CancelledError)
    assert [r for i, r in enumerate(results) if i != 3] == ["token-1"] * 9
    assert len(fetch.calls) == 1


@pytest.mark.parametrize("status", [403, 404, 405])
async def test_fallback_statuses_switch_to_v1_for_a_while(status: int) -> None:
    clock = Clock()
    fetch = Fetcher(error=IMDSTokenError("no", path="/latest/api/token", status=status))
    session = TokenSession(fetch, ttl=60, clock=clock)
    assert await session.get() is None
    assert session.using_v1
    assert await session.get() is None
    assert len(fetch.calls) == 1
    clock.now += V1_FALLBACK_SECONDS
    fetch.error = None
    assert await session.get() == "token-2"


async def test_timeout_falls_back_unless_v1_disabled() -> None:
    err = IMDSTokenTimeoutError("held", path="/latest/api/token")
    assert await TokenSession(Fetcher(error=err), ttl=60).get() is None
    strict = TokenSession(Fetcher(error=err), ttl=60, v1_allowed=False)
    with pytest.raises(IMDSTokenTimeoutError, match="hop limit"):
        await strict.get()


async def test_400_is_never_a_fallback() -> None:
    err = IMDSTokenError("bad", path="/latest/api/token", status=400)
    session = TokenSession(Fetcher(error=err), ttl=60)
    with pytest.raises(IMDSTokenError) as info:
        await session.get()
    assert info.value.status == 400
    assert not session.using_v1


async def test_repr_redacts_the_token() -> None:
    session = TokenSession(Fetcher(), ttl=60)
    token = await session.get()
    assert token is not None and token not in repr(session)
    assert "<redacted>" in repr(session)
