"""The FastAPI recipes in examples/ run against the emulator: their lifespan (driven as a server
drives it), their dependency, and the spot drain."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

NO_EXTRA = "is not installed: it comes with the 'examples' extra, pip install -e '.[examples]'"
pytest.importorskip("fastapi", reason="fastapi " + NO_EXTRA)
httpx = pytest.importorskip("httpx", reason="httpx " + NO_EXTRA)

from aioimds.emulator import Emulator  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
INSTANCE_ID = "i-0a1b2c3d4e5f60718"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), EXAMPLES / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[Any]:
    """The app's lifespan around an HTTP client calling it in-process (ASGI)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            yield client


async def until(check: Callable[[], Any], seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never happened")


async def test_the_lifespan_opens_one_client_that_every_request_shares(
    imds_emulator: Emulator,
) -> None:
    example = load("fastapi_app.py")
    app = example.make_app(imds_emulator.url)
    async with serving(app) as client:
        answers = await asyncio.gather(*(client.get("/") for _ in range(100)))
        imds = app.state.imds
        assert "open" in repr(imds)
    assert {r.status_code for r in answers} == {200}
    assert {tuple(sorted(r.json().items())) for r in answers} == {(
        ("availability_zone", "ap-northeast-1a"), ("instance_id", INSTANCE_ID),
        ("instance_type", "t3.micro"), ("region", "ap-northeast-1"))}
    assert "closed" in repr(imds)
    trace = [(t.method, t.path.removeprefix("/latest/")) for t in imds_emulator.counters.trace]
    assert trace[0] == ("PUT", "api/token")
    assert sorted(trace[1:]) == [  # 100 requests, each value read once
        ("GET", "meta-data/instance-id"), ("GET", "meta-data/instance-type"),
        ("GET", "meta-data/placement/availability-zone"),
        ("GET", "meta-data/placement/region")]


async def test_the_service_does_not_start_where_imds_gives_no_instance_id(
    imds_emulator: Emulator,
) -> None:
    imds_emulator.remove("/latest/meta-data/instance-id")
    app = load("fastapi_app.py").make_app(imds_emulator.url)
    with pytest.raises(RuntimeError, match="no instance id"):
        async with serving(app):
            pass


async def test_a_spot_notice_drains_the_queue_and_refuses_new_jobs(
    imds_emulator: Emulator,
) -> None:
    example = load("fastapi_spot_drain.py")
    app = example.make_app(imds_emulator.url, interval=0.05)
    async with serving(app) as client:
        accepted = [await client.post("/jobs") for _ in range(6)]
        assert [r.status_code for r in accepted] == [202] * 6
        assert (await client.get("/health")).json()["status"] == "serving"
        imds_emulator.schedule_spot_action(0.05, "terminate")

        async def refusing() -> bool:
            return (await client.get("/health")).status_code == 503

        await until(refusing)
        refused = await client.post("/jobs")
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "120"

        async def drained() -> bool:
            return (await client.get("/health")).json()["status"] == "drained"

        await until(drained)
        health = (await client.get("/health")).json()
        jobs = app.state.jobs
    assert health["action"] == "terminate" and health["queued"] == 0
    assert jobs.done == jobs.submitted == 6  # every job accepted ran; none after the notice


async def test_a_shutdown_without_notice_finishes_the_queued_jobs(
    imds_emulator: Emulator,
) -> None:
    app = load("fastapi_spot_drain.py").make_app(imds_emulator.url, interval=0.05)
    async with serving(app) as client:
        for _ in range(3):
            assert (await client.post("/jobs")).status_code == 202
        jobs = app.state.jobs
    assert jobs.done == 3 and jobs.drained.is_set() and jobs.notice is None
