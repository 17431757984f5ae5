"""pytest fixtures for testing services against the aioimds emulator.

Installing aioimds registers this module as the ``aioimds`` pytest plugin (the ``pytest11``
entry point), so every test suite gets these fixtures, each new for each test:

- ``imds_emulator``: a running :class:`~aioimds.emulator.Emulator` on ``http://127.0.0.1:PORT``
  serving the bundled default tree, IMDSv2 tokens required. The test may change leaves
  (``set_leaf``), schedule notices (``schedule_spot_action``), inject faults (``faults``) and
  read ``requests`` and ``counters``. Mark a test
  ``@pytest.mark.imds_emulator(tokens="optional", ...)`` to pass keyword arguments to
  ``Emulator`` (``snapshot=`` takes a :class:`~aioimds.Snapshot` or a file's path); the marker
  takes keyword arguments only.
- ``imds_emulator_thread``: the same emulator (the same marker applies), run on an event loop
  of its own in a background thread (:meth:`~aioimds.emulator.Emulator.in_thread`), for
  synchronous code: boto3/botocore, requests, Starlette's ``TestClient``. A plain (non-async)
  fixture: it needs no pytest-asyncio.
- ``imds_client``: an open :class:`~aioimds.IMDSClient` pointed at ``imds_emulator``, with the
  default settings (the environment and ``~/.aws/config`` are not read).
- ``imds_environment``: sets ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` to the emulator's URL and
  clears ``AWS_EC2_METADATA_DISABLED`` and ``AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE`` (with
  ``monkeypatch``, undone after the test), so code that builds its own client (aioimds,
  botocore, aiobotocore) talks to the emulator; returns the emulator.

``imds_emulator`` runs on the test's event loop: use it from async tests (pytest-asyncio;
``@pytest.mark.asyncio``, or ``asyncio_mode = auto``). A synchronous call to it from the test's
thread blocks that loop, so the emulator cannot answer until the caller's timeout (botocore
then returns no credentials after about 2 s): use ``imds_emulator_thread`` for synchronous
code. Without pytest-asyncio installed the plugin still loads; a test asking for an async
fixture fails with a message saying so.

Example, a synchronous test of code that uses botocore::

    import botocore.session

    def test_credentials_come_from_imds(imds_emulator_thread, monkeypatch):
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds_emulator_thread.url)
        creds = botocore.session.get_session().get_credentials()
        assert creds.method == "iam-role"

Nothing heavier than the ``aioimds`` package is imported until a fixture is used.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .client import IMDSClient
    from .emulator import Emulator

__all__ = ["imds_client", "imds_emulator", "imds_emulator_thread", "imds_environment"]

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
        "and imds_emulator_thread fixtures start (snapshot=, tokens=, "
        "instance_metadata_tags=, latency=, faults=, seed=, ...)",
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


def _marker_kwargs(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The keyword arguments of the test's ``imds_emulator`` marker; fails the test, saying
    how to write it, when the marker has positional arguments."""
    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        return {}
    if marker.args:
        pytest.fail(
            f"@pytest.mark.{MARKER} takes keyword arguments of Emulator only, got positional "
            f"{marker.args!r}: write @pytest.mark.{MARKER}(snapshot=...) or (tokens=...)",
            pytrace=False)
    return dict(marker.kwargs)


@_async_fixture
async def imds_emulator(request: pytest.FixtureRequest) -> AsyncIterator[Emulator]:
    """A running :class:`~aioimds.emulator.Emulator` (default tree, tokens required) on
    127.0.0.1 and a free port; stopped after the test, pending scheduled changes cancelled.
    Keyword arguments come from ``@pytest.mark.imds_emulator(...)``."""
    from .emulator import Emulator

    async with Emulator(**_marker_kwargs(request)) as emulator:
        yield emulator


@pytest.fixture
def imds_emulator_thread(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    """Like ``imds_emulator``, but serving from a background thread
    (:meth:`~aioimds.emulator.Emulator.in_thread`), so synchronous code under test can call
    it; stopped, with its thread, after the test."""
    from .emulator import Emulator

    with Emulator(**_marker_kwargs(request)).in_thread() as emulator:
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
