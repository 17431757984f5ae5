"""pytest fixtures for testing services against the aioimds emulator.

Installing aioimds registers this module as the ``aioimds`` pytest plugin (the ``pytest11``
entry point), so every test suite gets these fixtures, each new for each test:

- ``imds_emulator``: a running :class:`~aioimds.emulator.Emulator` on ``http://127.0.0.1:PORT``
  serving the bundled default tree, IMDSv2 tokens required. The test may change leaves
  (``set_leaf``), schedule notices (``schedule_spot_action``), inject faults (``faults``) and
  read ``counters``. Mark a test ``@pytest.mark.imds_emulator(tokens="optional", ...)`` to
  pass keyword arguments to ``Emulator``.
- ``imds_client``: an open :class:`~aioimds.IMDSClient` pointed at ``imds_emulator``, with the
  default settings (the environment and ``~/.aws/config`` are not read).
- ``imds_environment``: sets ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` to the emulator's URL and
  clears ``AWS_EC2_METADATA_DISABLED`` and ``AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE`` (with
  ``monkeypatch``, undone after the test), so code that builds its own client (aioimds,
  botocore, aiobotocore) talks to the emulator; returns the emulator.

The emulator runs on the test's event loop: use the fixtures from async tests (pytest-asyncio;
``@pytest.mark.asyncio``, or ``asyncio_mode = auto``). A synchronous test blocking on an HTTP
call to the emulator would wait forever. Without pytest-asyncio installed the plugin still
loads; a test asking for these fixtures fails with a message saying so.

Nothing heavier than the ``aioimds`` package is imported until a fixture is used.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .client import IMDSClient
    from .emulator import Emulator

__all__ = ["imds_client", "imds_emulator", "imds_environment"]

ENDPOINT_VARIABLE = "AWS_EC2_METADATA_SERVICE_ENDPOINT"
"""The variable that points aioimds and the AWS SDKs at an IMDS endpoint."""
CLEARED_VARIABLES = ("AWS_EC2_METADATA_DISABLED", "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE")
"""Unset by ``imds_environment``: either could keep a client away from the emulator."""
MARKER = "imds_emulator"
"""The marker whose keyword arguments go to the ``Emulator`` of ``imds_emulator``."""

def pytest_configure(config: pytest.Config) -> None:
    """Register the ``imds_emulator`` marker (unknown markers warn, and may be errors)."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**kwargs): keyword arguments of the aioimds Emulator that the imds_emulator "
        "fixture starts (snapshot=, tokens=, latency=, faults=, seed=)",
    )


def _async_fixture(func: Callable[..., Any]) -> Any:
    """``pytest_asyncio.fixture(func)``, or a fixture that fails saying pytest-asyncio is
    needed when it is not installed."""
    try:
        import pytest_asyncio
    except ImportError:
        return _needs_pytest_asyncio(func.__name__)
    return pytest_asyncio.fixture(func)


def _needs_pytest_asyncio(name: str) -> Any:
    @pytest.fixture(name=name)
    def unavailable() -> None:
        pytest.fail(f"the {name} fixture (aioimds) needs pytest-asyncio: "
                    "pip install pytest-asyncio", pytrace=False)

    return unavailable


@_async_fixture
async def imds_emulator(request: pytest.FixtureRequest) -> AsyncIterator[Emulator]:
    """A running :class:`~aioimds.emulator.Emulator` (default tree, tokens required) on
    127.0.0.1 and a free port; stopped after the test, pending scheduled changes cancelled.
    Keyword arguments come from ``@pytest.mark.imds_emulator(...)``."""
    from .emulator import Emulator

    marker = request.node.get_closest_marker(MARKER)
    kwargs: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    async with Emulator(**kwargs) as emulator:
        yield emulator


@_async_fixture
async def imds_client(imds_emulator: Emulator) -> AsyncIterator[IMDSClient]:
    """An open :class:`~aioimds.IMDSClient` with ``endpoint=imds_emulator.url`` and every
    other setting at its default; closed after the test."""
    from .client import IMDSClient
    from .config import IMDSConfig

    async with IMDSClient(IMDSConfig(endpoint=imds_emulator.url)) as client:
        yield client


@pytest.fixture
def imds_environment(imds_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """Point ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` at ``imds_emulator`` and clear
    :data:`CLEARED_VARIABLES` for this test; returns the emulator."""
    monkeypatch.setenv(ENDPOINT_VARIABLE, imds_emulator.url)
    for name in CLEARED_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return imds_emulator
