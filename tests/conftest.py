"""Shared test fixtures: the fixture snapshots of ../shared/fixtures and a running emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
"""The realistic trees shipped beside the repository (see their NOTICE.md)."""

FIXTURE_FILES = sorted(FIXTURES.glob("*.snapshot.json")) if FIXTURES.is_dir() else []

needs_fixtures = pytest.mark.skipif(
    not FIXTURE_FILES, reason=f"the shared fixtures are not beside the repository ({FIXTURES})"
)


def fixture_params() -> list[object]:
    """One pytest param per fixture snapshot file, or one skipped param when none exist."""
    if not FIXTURE_FILES:
        return [pytest.param(None, marks=needs_fixtures, id="no-fixtures")]
    return [pytest.param(p, id=p.name.removesuffix(".snapshot.json")) for p in FIXTURE_FILES]


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
