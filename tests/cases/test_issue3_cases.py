"""Resilience failures of other IMDS clients replayed against the emulator; each test names the
upstream report."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from aioimds import (
    IMDSClient,
    IMDSConfig,
    IMDSTokenError,
    IMDSTokenTimeoutError,
)
from aioimds.emulator import Emulator, Faults, PathFault
from aioimds.emulator.generate import large_tree

ROLE_DIR = "/latest/meta-data/iam/security-credentials/"


async def role_name(imds: IMDSClient) -> str:
    (name,) = await imds.list("meta-data/iam/security-credentials/")
    return name


@pytest.mark.usefixtures("virtual_time")
async def test_c01_slow_first_answer_is_retried_within_the_deadline() -> None:
    """botocore #1791: the first GET of the role listing answers after 1.5 s."""
    async with Emulator(faults=Faults(path_faults=[PathFault(ROLE_DIR, delay=1.5)])) as emu:
        async with IMDSClient(IMDSConfig(endpoint=emu.url)) as imds:  # default settings
            assert await role_name(imds)
    gets = [t for t in emu.counters.trace if t.path == ROLE_DIR]
    assert len(gets) == 2


@pytest.mark.usefixtures("virtual_time")
async def test_c02_held_put_and_tokens_required_is_a_clear_hop_limit_error() -> None:
    """elastic-ci-stack-for-aws #857: PUT held; GET without token: 401. The PUT is retried
    within the request's budget (issue 11), then one token-less GET tells the hop limit."""
    async with Emulator(faults=Faults(hold_token_put=True)) as emu:
        async with IMDSClient(endpoint=emu.url, timeout=0.3) as imds:
            start = asyncio.get_running_loop().time()
            with pytest.raises(IMDSTokenTimeoutError) as info:
                await imds.get("meta-data/instance-id")
            elapsed = asyncio.get_running_loop().time() - start
            deadline = imds.config.deadline_for(imds.config.attempts)
    assert "hop limit" in str(info.value) and "http-put-response-hop-limit 2" in str(info.value)
    assert elapsed < deadline
    assert emu.counters.token_puts == 3
    assert [t.token for t in emu.counters.trace if t.method == "GET"] == [False]


@pytest.mark.usefixtures("virtual_time")
@pytest.mark.parametrize("case", ["C03", "C28", "C29a", "C30"])
async def test_held_put_falls_back_to_imdsv1_within_the_timeout(case: str) -> None:
    """aws-c-auth #182, aiobotocore PR #941, AWS.jl #654 (a), ec2-metadata #380:
    PUT held forever; GET without token: 200."""
    async with Emulator(tokens="optional", faults=Faults(hold_token_put=True)) as emu:
        async with IMDSClient(endpoint=emu.url, timeout=0.3) as imds:
            start = asyncio.get_running_loop().time()
            assert await imds.get("meta-data/placement/region") == "ap-northeast-1"
            elapsed = asyncio.get_running_loop().time() - start
            assert elapsed < imds.config.deadline_for(imds.config.attempts)
            assert await imds.get("meta-data/placement/region") == "ap-northeast-1"
    assert emu.counters.token_puts == 3  # retried within the budget; the fallback sticks
    assert [t.token for t in emu.counters.trace if t.method == "GET"] == [False, False]


@pytest.mark.usefixtures("virtual_time")
async def test_c03_held_put_with_v1_disabled_is_a_clear_error() -> None:
    """aws-c-auth #182: PUT held forever; with IMDSv1 disabled, a clear error, no GET."""
    async with Emulator(tokens="optional", faults=Faults(hold_token_put=True)) as emu:
        async with IMDSClient(endpoint=emu.url, timeout=0.3, v1_disabled=True) as imds:
            with pytest.raises(IMDSTokenTimeoutError, match="IMDSv1 fallback is disabled"):
                await imds.get("meta-data/placement/region")
    assert [t for t in emu.counters.trace if t.method == "GET"] == []


@pytest.mark.usefixtures("virtual_time")
async def test_c05_short_ttl_poller_keeps_working() -> None:
    """aws-node-termination-handler #229: token TTL 2 s, every GET with an old token: 401."""
    async with Emulator(faults=Faults(max_token_ttl=2, revoke_every=0.7)) as emu:
        async with IMDSClient(endpoint=emu.url) as imds:
            deadline = asyncio.get_running_loop().time() + 3.0
            polls = 0
            while asyncio.get_running_loop().time() < deadline:
                assert await imds.get("meta-data/instance-id")
                polls += 1
                await asyncio.sleep(0.1)
    assert polls >= 20
    assert emu.counters.token_puts >= 3


@pytest.mark.usefixtures("virtual_time")
async def test_c06_long_dump_with_short_token_and_slow_answers_completes() -> None:
    """amazon.aws #2205: 600+ nodes, slow answers, short token TTL."""
    tree = large_tree(interfaces=14, associations=20, tags=50)
    assert len(tree) > 600
    async with Emulator(tree, latency=0.02, faults=Faults(max_token_ttl=1)) as emu:
        async with IMDSClient(endpoint=emu.url) as imds:
            # 8 in flight: the dump lasts well past the 1 s token (665 paths x 20 ms / 8)
            assert await imds.dump(concurrency=8) == tree.subtree()
    assert emu.counters.token_puts >= 2


@pytest.mark.usefixtures("virtual_time")
@pytest.mark.parametrize("status", [429, 503])
async def test_c12_one_throttle_or_server_error_is_retried(status: int) -> None:
    """ansible #38902: any leaf answers 429 or 503 once, then 200."""
    path = "/latest/meta-data/instance-id"
    async with Emulator(faults=Faults(path_faults=[PathFault(path, status=status)])) as emu:
        async with IMDSClient(endpoint=emu.url) as imds:
            assert (await imds.get("meta-data/instance-id")).startswith("i-")
    assert [t.status for t in emu.counters.trace if t.path == path] == [status, 200]


@pytest.mark.usefixtures("virtual_time")
@pytest.mark.parametrize(("case", "status"), [("C14", 404), ("C27", 405), ("403", 403)])
async def test_put_refused_falls_back_to_imdsv1(case: str, status: int) -> None:
    """eucalyptus #196 (404), aiobotocore #1055 (405): GETs without token: 200."""
    async with Emulator(tokens="optional", faults=Faults(token_put_status=status)) as emu:
        async with IMDSClient(endpoint=emu.url) as imds:
            assert await imds.get("meta-data/placement/region") == "ap-northeast-1"
        async with IMDSClient(endpoint=emu.url, v1_disabled=True) as imds:
            with pytest.raises(IMDSTokenError) as info:
                await imds.get("meta-data/placement/region")
    assert info.value.status == status


async def test_c21_throttled_crawl_slows_down_and_completes() -> None:
    """OpenStudio-workflow-gem #5: more than N requests per second: 429."""
    async with Emulator(faults=Faults(throttle_rps=150)) as emu:
        async with IMDSClient(endpoint=emu.url) as imds:
            assert await imds.dump() == emu.snapshot.subtree()
    assert emu.counters.requests[("GET", 429)] > 0


@pytest.mark.usefixtures("virtual_time")
async def test_c22_credentials_throttled_once_then_served() -> None:
    """ex_aws PR #625: the credentials leaf answers 429 once, then 200 JSON."""
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        role = await role_name(imds)
        emu.faults.path_faults = [PathFault(ROLE_DIR + role, status=429)]
        creds = await imds.get_json(f"meta-data/iam/security-credentials/{role}")
    assert creds["Code"] == "Success" and creds["AccessKeyId"]


@pytest.fixture
async def forbidding_proxy() -> AsyncIterator[tuple[str, list[str]]]:
    """An HTTP 'proxy' on loopback that answers 403 to everything and records requests."""
    seen: list[str] = []

    async def handler(request: web.BaseRequest) -> web.Response:
        seen.append(str(request.url))
        return web.Response(status=403, text="proxy says no")

    server = web.Server(handler)
    runner = web.ServerRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


@pytest.mark.usefixtures("virtual_time")
async def test_c23_proxies_from_the_environment_are_never_used(
    forbidding_proxy: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """boto #1146, xray-daemon #255: HTTP_PROXY points at a proxy that answers 403."""
    proxy, seen = forbidding_proxy
    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(var, proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        assert await imds.get("meta-data/placement/region") == "ap-northeast-1"
    assert seen == []


@pytest.mark.usefixtures("virtual_time")
async def test_c25_put_400_is_not_retried_and_reported_at_once() -> None:
    """aws-sdk-ruby #2177: PUT token answers 400 every time; GET without token: 200."""
    async with Emulator(tokens="optional", faults=Faults(token_put_status=400)) as emu:
        async with IMDSClient(endpoint=emu.url, attempts=5) as imds:
            start = asyncio.get_running_loop().time()
            with pytest.raises(IMDSTokenError, match="not an IMDS or rejected the token"):
                await imds.get("meta-data/placement/region")
            assert asyncio.get_running_loop().time() - start < 0.5
    assert emu.counters.token_puts == 1


@pytest.mark.usefixtures("virtual_time")
async def test_c29b_expired_token_is_re_put_and_the_request_retried_once() -> None:
    """AWS.jl #654 (b): a GET with a token the server has expired answers 401."""
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        assert await imds.get("meta-data/instance-id")
        emu.revoke_tokens()  # the server forgets the token before the client expects it
        assert await imds.get("meta-data/instance-id")
    statuses = [(t.method, t.status) for t in emu.counters.trace]
    assert statuses == [("PUT", 200), ("GET", 200), ("GET", 401), ("PUT", 200), ("GET", 200)]


@pytest.mark.usefixtures("virtual_time")
async def test_c32_app_start_up_is_bounded_by_the_timeout() -> None:
    """vector #12916: the PUT is held; an app awaiting metadata at start-up must not hang."""
    async with Emulator(faults=Faults(hold_token_put=True)) as emu:
        async with IMDSClient(endpoint=emu.url, timeout=0.5, attempts=2) as imds:
            start = asyncio.get_running_loop().time()
            with pytest.raises(IMDSTokenTimeoutError):
                await imds.get("meta-data/placement/region")
            # the request's overall deadline: attempts x (timeout + backoff cap)
            assert asyncio.get_running_loop().time() - start < imds.config.deadline_for(2)


@pytest.mark.usefixtures("virtual_time")
async def test_put_refused_and_tokens_required_names_the_status_not_the_hop_limit() -> None:
    async with Emulator(faults=Faults(token_put_status=403)) as emu:
        async with IMDSClient(endpoint=emu.url) as imds:
            with pytest.raises(IMDSTokenError) as info:
                await imds.get("meta-data/instance-id")
    assert not isinstance(info.value, IMDSTokenTimeoutError)
    assert "answered 403" in str(info.value) and "hop limit" not in str(info.value)
    assert info.value.status == 401


async def test_typed_views_fetching_many_leaves_at_once_ride_out_a_throttle() -> None:
    """Concurrent requests outside a dump share one pacing: none exhausts its attempts."""
    async with Emulator(faults=Faults(throttle_rps=20)) as emu:
        async with IMDSClient(endpoint=emu.url) as imds:
            placement = await imds.placement()
            tags = await imds.tags()
            emu.faults.throttle_rps = 50
            interfaces = await imds.network_interfaces()
    assert placement.region == "ap-northeast-1" and tags and len(interfaces) == 2
    assert emu.counters.requests[("GET", 429)] > 0


async def test_c06_with_c21_a_throttled_dump_survives_token_refreshes() -> None:
    """amazon.aws #2205 with OpenStudio-workflow-gem #5: a throttled service and a short token:
    the re-PUTs are paced with the crawl."""
    async with Emulator(faults=Faults(throttle_rps=50, max_token_ttl=1)) as emu:
        async with IMDSClient(endpoint=emu.url) as imds:
            assert await imds.dump() == emu.snapshot.subtree()
    assert emu.counters.token_puts >= 2
    assert emu.counters.requests[("GET", 429)] > 0
