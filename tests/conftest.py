"""Shared test fixtures: the hermetic environment, the fixture snapshots of tests/fixtures/ and a
running emulator."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

try:
    import looptime
except ImportError:  # Python 3.10: looptime 0.8+ needs 3.11, and 0.7 hangs now and then
    looptime = None

FIXTURES = Path(__file__).resolve().parent / "fixtures"
"""The realistic trees kept in the repository (provenance and licences in their NOTICE.md)."""

FIXTURE_FILES = sorted(FIXTURES.glob("*.snapshot.json"))
if not FIXTURE_FILES:
    raise RuntimeError(f"no fixture snapshots in {FIXTURES}; the checkout is incomplete")


TICK = 1e-6
"""One step of virtual time (looptime's resolution). Loop times are then exact, but a duration
read as the difference of two loop times carries float rounding, so a lower bound on one
allows a tick: ``elapsed >= 0.3 - TICK``."""


def fixture_params() -> list[object]:
    """One pytest param per fixture snapshot file, named after it."""
    return [pytest.param(p, id=p.name.removesuffix(".snapshot.json")) for p in FIXTURE_FILES]


def _scrub(monkeypatch: pytest.MonkeyPatch, empty: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))


@pytest.fixture(scope="session", autouse=True)
def hermetic_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The same scrubbed environment for the whole session, so that module- and
    session-scoped fixtures (set up before any function-scoped one) never see the caller's."""
    empty = tmp_path_factory.getbasetemp() / "aws-config-empty"
    empty.write_text("")
    with pytest.MonkeyPatch.context() as monkeypatch:
        _scrub(monkeypatch, empty)
        yield


@pytest.fixture(autouse=True)
def hermetic_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
                         ) -> None:
    """Every test starts from an environment with no ``AWS_*`` variable and an empty shared
    config file, so the caller's ``AWS_EC2_METADATA_DISABLED``, ``AWS_PROFILE`` or a broken
    ``~/.aws/config`` cannot change what a test sees. Tests set what they need on top."""
    empty = tmp_path_factory.getbasetemp() / "aws-config-empty"
    empty.write_text("")
    _scrub(monkeypatch, empty)


@pytest.fixture
async def virtual_time() -> AsyncIterator[None]:
    """Run the rest of the test, its later fixtures included, in virtual time (looptime): while
    the loop has nothing to do, its clock jumps to the next timer, so sleeps, timeouts, token
    TTLs and poll intervals cost no real time. The clock starts from the loop's real time, so
    times taken before stay comparable, and reads back what ``aioimds.clock.now()`` reads.

    Use it (``@pytest.mark.usefixtures("virtual_time")``) only where every peer runs on the
    test's own loop (the emulator, the servers of ``hostile_servers``): a child process or a
    thread answers in real time, and the jumping clock would time it out early. Where looptime
    is not installed (Python 3.10, see pyproject) the test runs in real time."""
    if looptime is None:  # the same test, in real time
        yield
        return
    loop = asyncio.get_running_loop()
    # The plugin of looptime is disabled in pyproject (it patches every loop of every test, and
    # makes an unclosed loop in sync tests); the loop is patched here, for this test only.
    patched = looptime.patch_event_loop(loop, start=loop.time(), _enabled=False)
    with patched.looptime_enabled():
        yield


@pytest.fixture
async def emulator() -> AsyncIterator[object]:
    """A running emulator with the bundled default tree, tokens required."""
    from aioimds.emulator import Emulator

    async with Emulator() as emu:
        yield emu


@pytest.fixture
async def emu() -> AsyncIterator[Any]:
    """A running emulator, default tree, seeded randomness (the emulator's own tests)."""
    from aioimds.emulator import Emulator

    async with Emulator(seed=7) as emulator:
        yield emulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A raw aiohttp session for driving the emulator by hand."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session
