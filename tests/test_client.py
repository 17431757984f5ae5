"""IMDSClient against the emulator over loopback: the API, the token session, errors."""

from __future__ import annotations

import asyncio
import logging

import pytest

from aioimds import (
    IMDSClient,
    IMDSConfig,
    IMDSDisabledError,
    IMDSHTTPError,
    IMDSNotFoundError,
    IMDSResponseError,
    IMDSTokenError,
    PathError,
    Record,
)
from aioimds.emulator import Emulator, Faults, PathFault


async def test_seed_walk(emulator: Emulator) -> None:
    """PUT a token (TTL 21600), then list /, /latest/, meta-data/, placement/, get region."""
    async with IMDSClient(endpoint=emulator.url) as imds:
        versions = await imds.list("/")
        assert versions[-1] == "latest"
        assert {"dynamic", "meta-data", "user-data"} <= set(await imds.list(""))
        assert "placement/" in await imds.list("meta-data/")
        assert await imds.list("meta-data/placement/") == [
            "availability-zone", "availability-zone-id", "region"]
        assert await imds.get("meta-data/placement/region") == "ap-northeast-1"
    puts = [t for t in emulator.counters.trace if t.method == "PUT"]
    assert len(puts) == 1
    assert puts[0].headers["X-aws-ec2-metadata-token-ttl-seconds"] == "21600"
    gets = [t for t in emulator.counters.trace if t.method == "GET"]
    assert all(t.token and t.status == 200 for t in gets)


@pytest.mark.usefixtures("virtual_time")
async def test_thousand_concurrent_gets_cause_one_token_put_and_one_get(
    emulator: Emulator,
) -> None:
    async with IMDSClient(endpoint=emulator.url) as imds:
        got = await asyncio.gather(
            *(imds.get("meta-data/placement/region") for _ in range(1000)))
    assert set(got) == {"ap-northeast-1"}
    assert emulator.counters.token_puts == 1
    assert emulator.counters.requests[("GET", 200)] == 1  # one flight (aioimds.coalesce)


async def test_get_bytes_get_json_and_list(emulator: Emulator) -> None:
    async with IMDSClient(endpoint=emulator.url) as imds:
        doc = await imds.get_json("dynamic/instance-identity/document")
        assert doc["region"] == "ap-northeast-1"
        data = await imds.get_bytes("user-data")
        assert data == emulator.snapshot["/latest/user-data"].body
        assert data[:2] == b"\x1f\x8b"  # gzip, returned undecoded (salt #59541)
        keys = await imds.list("meta-data/public-keys")
        assert keys and "=" in keys[0]


async def test_404_raises_not_found_naming_the_path(emulator: Emulator) -> None:
    async with IMDSClient(endpoint=emulator.url) as imds:
        with pytest.raises(IMDSNotFoundError) as info:
            await imds.get("meta-data/spot/instance-action")
    assert info.value.status == 404
    assert info.value.path == "/latest/meta-data/spot/instance-action"


async def test_other_status_raises_http_error_with_path_and_status(emulator: Emulator) -> None:
    emulator.set_response("/latest/meta-data/ami-id", Record(b"", 403))
    async with IMDSClient(endpoint=emulator.url) as imds:
        with pytest.raises(IMDSHTTPError) as info:
            await imds.get("meta-data/ami-id")
    assert (info.value.path, info.value.status) == ("/latest/meta-data/ami-id", 403)
    assert "403" in str(info.value)


async def test_non_utf8_get_and_bad_json_are_typed_errors(emulator: Emulator) -> None:
    async with IMDSClient(endpoint=emulator.url) as imds:
        with pytest.raises(IMDSResponseError, match="get_bytes"):
            await imds.get("user-data")
        with pytest.raises(IMDSResponseError, match="not JSON"):
            await imds.get_json("meta-data/placement/region")


async def test_paths_with_odd_characters_are_encoded(emulator: Emulator) -> None:
    emulator.set_leaf("/latest/meta-data/tags/instance/my%20tag%3F", "v1")
    emulator.set_leaf("/latest/meta-data/tags/instance/a=b,c+d@e:f.g", "v2")
    async with IMDSClient(endpoint=emulator.url) as imds:
        assert await imds.get("meta-data/tags/instance/my tag?") == "v1"
        assert await imds.get("meta-data/tags/instance/a=b,c+d@e:f.g") == "v2"
        with pytest.raises(PathError):
            await imds.get("meta-data/../../etc/passwd")
    paths = [t.path for t in emulator.counters.trace if t.method == "GET"]
    assert paths == ["/latest/meta-data/tags/instance/my%20tag%3F",
                     "/latest/meta-data/tags/instance/a=b,c+d@e:f.g"]


@pytest.mark.usefixtures("virtual_time")
async def test_401_refreshes_the_token_and_retries_once(emulator: Emulator) -> None:
    async with IMDSClient(endpoint=emulator.url) as imds:
        assert await imds.get("meta-data/instance-id")
        emulator.revoke_tokens()
        assert await imds.get("meta-data/placement/region") == "ap-northeast-1"
    assert emulator.counters.token_puts == 2
    assert emulator.counters.requests[("GET", 401)] == 1


@pytest.mark.usefixtures("virtual_time")
async def test_echoed_ttl_wins_and_short_tokens_are_refreshed() -> None:
    async with Emulator(faults=Faults(max_token_ttl=1)) as emu:
        async with IMDSClient(endpoint=emu.url) as imds:
            for _ in range(4):
                assert await imds.get("meta-data/placement/region") == "ap-northeast-1"
                await asyncio.sleep(0.4)
        assert emu.counters.token_puts >= 2
        assert emu.counters.requests[("GET", 401)] == 0  # refreshed before expiry


async def test_redirect_is_not_followed(emulator: Emulator) -> None:
    emulator.set_response("/latest/meta-data/ami-id", Record(b"", 302, "text/plain"))
    async with IMDSClient(endpoint=emulator.url) as imds:
        with pytest.raises(IMDSResponseError, match="redirect") as info:
            await imds.get("meta-data/ami-id")
    assert info.value.status == 302


async def test_disabled_raises_before_any_connection(emulator: Emulator) -> None:
    async with IMDSClient(IMDSConfig(endpoint=emulator.url, disabled=True)) as imds:
        with pytest.raises(IMDSDisabledError):
            await imds.get("meta-data/ami-id")
    assert emulator.counters.trace == []


async def test_token_never_in_logs_reprs_or_errors(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with IMDSClient(endpoint=emulator.url) as imds:
        await imds.get("meta-data/ami-id")
        emulator.revoke_tokens()
        try:
            await imds.get("meta-data/nope")
        except IMDSNotFoundError as exc:
            err = f"{exc!s} {exc!r}"
        assert imds._tokens is not None and imds._tokens._token is not None
        token = imds._tokens._token[0]
        texts = [caplog.text, repr(imds), repr(imds._tokens), err]
    assert all(token not in t for t in texts)


async def test_client_reopens_after_close_and_close_twice_is_harmless(
    emulator: Emulator,
) -> None:
    imds = IMDSClient(endpoint=emulator.url)
    async with imds:
        assert await imds.get("meta-data/placement/region") == "ap-northeast-1"
    await imds.close()
    async with imds:
        assert await imds.get("meta-data/placement/region") == "ap-northeast-1"
    assert emulator.counters.token_puts == 2


def test_client_in_two_event_loops_one_after_the_other() -> None:
    async def one(imds: IMDSClient, url: str) -> str:
        async with imds:
            return await imds.get("meta-data/placement/region")

    async def run() -> list[str]:
        async with Emulator() as emu:
            imds = IMDSClient(endpoint=emu.url)
            first = await one(imds, emu.url)
            return [first, await asyncio.get_running_loop().run_in_executor(
                None, lambda: asyncio.run(one(imds, emu.url)))]

    assert asyncio.run(run()) == ["ap-northeast-1", "ap-northeast-1"]


async def test_not_opened_is_a_clear_error() -> None:
    imds = IMDSClient(endpoint="http://127.0.0.1:9")
    with pytest.raises(RuntimeError, match="async with"):
        await imds.get("meta-data/ami-id")


@pytest.mark.usefixtures("virtual_time")
async def test_overall_deadline_stops_the_retries() -> None:
    path = "/latest/meta-data/instance-id"
    faults = Faults(path_faults=[PathFault(path, status=503, count=1000)])
    async with Emulator(faults=faults) as emu:
        async with IMDSClient(endpoint=emu.url, attempts=1000, deadline=0.4) as imds:
            start = asyncio.get_running_loop().time()
            with pytest.raises(IMDSHTTPError) as info:
                await imds.get("meta-data/instance-id")
            elapsed = asyncio.get_running_loop().time() - start
    assert info.value.status == 503 and "after retries" in str(info.value)
    assert elapsed < 0.4 + 0.2
    assert 2 <= len([t for t in emu.counters.trace if t.path == path]) < 1000


def _fallback_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "using IMDSv1" in r.getMessage()]


async def test_fallback_warned_once_when_imdsv1_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    async with Emulator(tokens="optional", faults=Faults(token_put_status=500)) as emu:
        async with IMDSClient(endpoint=emu.url) as imds:
            await imds.get("meta-data/ami-id")
            await imds.get("meta-data/instance-id")
    (warning,) = _fallback_warnings(caplog)
    assert "answered 500" in warning and "for 300 s" in warning


async def test_no_fallback_warning_when_the_token_less_get_answers_401(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    async with Emulator(tokens="required", faults=Faults(token_put_status=500)) as emu:
        async with IMDSClient(endpoint=emu.url) as imds:
            with pytest.raises(IMDSTokenError) as err:
                await imds.get("meta-data/ami-id")
    assert err.value.status == 401 and "answered 500" in str(err.value)
    assert _fallback_warnings(caplog) == []
