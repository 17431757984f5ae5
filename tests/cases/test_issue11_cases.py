"""Real-world failures of other IMDS clients (cases C41-C52 of real-world-bugs.md that touch the
request pipeline, the token PUT and the transport), replayed over HTTP on 127.0.0.1. Each test
names the upstream reports it replays."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time

import pytest
from hostile_servers import TOKEN_PATH, Scripted, raw_server, run_cli, unanswered_port

from aioimds import (
    IMDSClient,
    IMDSConfig,
    IMDSConfigError,
    IMDSConnectionError,
    IMDSError,
    IMDSHTTPError,
    IMDSNotFoundError,
    IMDSTimeoutError,
    IMDSTokenError,
    IMDSTokenTimeoutError,
    IMDSUnreachableError,
    Record,
    wait_until_ready,
)
from aioimds.client import MAX_CONNECTIONS
from aioimds.emulator import Emulator, Faults, PathFault

MD = "/latest/meta-data/"
ROLES = MD + "iam/security-credentials/"
LEAF = ROLES + "role"
TREE = {ROLES: b"role", LEAF: b'{"Code": "Success"}', MD + "instance-id": b"i-0abc"}


@pytest.mark.parametrize("first", [(503, b""), (429, b""), "drop"], ids=["503", "429", "drop"])
async def test_c41_a_put_failing_once_is_retried_as_a_put_and_no_fallback_is_permanent(
        first: tuple[int, bytes] | str) -> None:
    """aws-sdk-cpp #2282, aws-c-auth PR #218: tokens required; the first PUT answers 503 (or
    429, or is dropped); token-less GETs get 401 with an empty body."""
    script = Scripted(dict(TREE), tokens_required=True).add(TOKEN_PATH, first)
    async with raw_server(script.handle) as url, IMDSClient(endpoint=url) as imds:
        assert await imds.get("meta-data/instance-id") == "i-0abc"
        assert not imds._tokens.using_v1  # type: ignore[union-attr]
    assert script.methods(TOKEN_PATH) == ["PUT", "PUT"]
    assert [t for m, p, t in script.seen if m == "GET"] == [script.token]


async def test_c41_a_token_less_401_returns_the_client_to_token_mode() -> None:
    """aws-c-auth PR #218: after a 404 on the PUT (IMDSv1), the service starts requiring
    tokens: the token-less 401 ends the fallback, the PUT is tried again and the call works."""
    script = Scripted(dict(TREE), tokens_required=True).add(TOKEN_PATH, (404, b""))
    async with raw_server(script.handle) as url, IMDSClient(endpoint=url) as imds:
        assert await imds.get("meta-data/instance-id") == "i-0abc"
        assert await imds.get("meta-data/instance-id") == "i-0abc"
    assert [(m, t) for m, _, t in script.seen] == [
        ("PUT", None), ("GET", None), ("PUT", None), ("GET", script.token),
        ("GET", script.token)]


@pytest.mark.parametrize("variant", ["held", "nothing-listening", "put-401"])
async def test_c42_tokens_required_and_no_token_is_a_bounded_run_and_one_clear_error(
        variant: str) -> None:
    """aws-c-auth PR #217, mountpoint-s3 #571, enclaver #132, paws #580: tokens required and
    (a) the PUT held, (b) nothing listening, (c) the PUT answered 401 every time. A small,
    bounded number of requests under one deadline, then one error naming the token PUT."""
    timeout = 0.3
    script = Scripted(dict(TREE), tokens_required=True)
    if variant == "held":
        script.add(TOKEN_PATH, *["hold"] * 10)
    elif variant == "put-401":
        script.add(TOKEN_PATH, *[(401, b"")] * 10)
    async with raw_server(script.handle) as url:
        if variant == "nothing-listening":
            with unanswered_port() as dead:
                url = dead
        async with IMDSClient(endpoint=url, timeout=timeout) as imds:
            start = time.monotonic()
            with pytest.raises(IMDSError) as info:
                await imds.get("meta-data/instance-id")
            took = time.monotonic() - start
            deadline = imds.config.deadline_for(imds.config.attempts)
    assert took < deadline
    assert len(script.seen) <= 4  # 3 PUTs at most and one token-less GET
    err = info.value
    if variant == "held":
        assert isinstance(err, IMDSTokenTimeoutError) and "hop limit" in str(err)
    elif variant == "put-401":
        assert isinstance(err, IMDSTokenError) and err.status == 401
        assert err.path == TOKEN_PATH and script.methods(TOKEN_PATH) == ["PUT"]
    else:
        assert isinstance(err, IMDSUnreachableError) and "not on EC2" in str(err)
        assert err.path == TOKEN_PATH


async def test_c43_the_granted_ttl_is_tracked_and_a_401_means_drop_re_put_retry_once() -> None:
    """google-auth-library-nodejs #1755, AWS.jl PR #736, smithy-rs #1156: a 300 s token asked,
    the granted TTL (1 s here) echoed; after it the token gets 401; tokens also revoked every
    0.4 s. Callers never see a 401 over a soak of many requests."""
    async with Emulator(faults=Faults(max_token_ttl=1, revoke_every=0.4)) as emu:
        async with IMDSClient(endpoint=emu.url, token_ttl=300) as imds:
            end = time.monotonic() + 2.0
            calls = 0
            while time.monotonic() < end:
                assert (await imds.get("meta-data/instance-id")).startswith("i-")
                calls += 1
                await asyncio.sleep(0.02)
    puts = [t for t in emu.counters.trace if t.method == "PUT"]
    assert puts[0].headers["X-aws-ec2-metadata-token-ttl-seconds"] == "300"
    assert calls > 30 and emu.counters.token_puts >= 4


async def test_c43_a_wall_clock_jump_does_not_expire_the_token(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """smithy-rs #1156: the wall clock jumps an hour; the token's lifetime is kept on the event
    loop's monotonic clock, so it is neither expired early nor kept past its TTL."""
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        await imds.get("meta-data/instance-id")
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() + 3600)
        await imds.get("meta-data/instance-id")
    assert emu.counters.token_puts == 1


async def test_c44_the_put_always_carries_a_valid_ttl_and_never_x_forwarded_for(
        caplog: pytest.LogCaptureFixture) -> None:
    """firecracker PR #5290, metaflow PR #2470, fakecloud PR #2322: a strict token endpoint
    (no TTL, TTL 0 or 21601: 400; X-Forwarded-For: 403). The TTL is checked at config time;
    an IMDSv1 fallback is logged once and counted."""
    for bad in (0, 21601):
        with pytest.raises(IMDSConfigError):
            IMDSConfig(token_ttl=bad)
    caplog.set_level(logging.WARNING, logger="aioimds")
    async with Emulator(tokens="optional", faults=Faults(token_put_status=405)) as emu:
        async with IMDSClient(endpoint=emu.url, token_ttl=21600) as imds:
            for _ in range(3):
                await imds.get("meta-data/instance-id")
            assert imds.token_puts == 1 and imds._tokens.using_v1  # type: ignore[union-attr]
    for entry in emu.counters.trace:
        assert "X-Forwarded-For" not in entry.headers
        if entry.method == "PUT":
            assert entry.headers["X-aws-ec2-metadata-token-ttl-seconds"] == "21600"
    assert caplog.text.count("using IMDSv1") == 1


async def test_c46_keep_alive_connections_stay_within_the_limit_and_are_all_released() -> None:
    """aws-sdk-js-v3 #7538, PR #7543: keep-alive on; PUT 403 and GETs 404 with small XHTML
    bodies; some answers slower than the timeout; thousands of sequential and 200 concurrent
    requests. The service refuses any connection past the client's limit, so exceeding it
    would fail requests; closing leaves no unclosed-connector warning (warnings are errors)."""
    slow = MD + "slow"
    faults = Faults(token_put_status=403, max_connections=MAX_CONNECTIONS,
                    path_faults=[PathFault(slow, delay=2.0, count=10**6)])
    async with Emulator(tokens="optional", faults=faults) as emu:
        async with IMDSClient(endpoint=emu.url, timeout=1.5, attempts=1) as imds:
            for i in range(1000):
                with pytest.raises(IMDSNotFoundError):
                    await imds.get(f"meta-data/absent-{i}")
            results = await asyncio.gather(
                *(imds.get(f"meta-data/absent-{i}") for i in range(200)),
                *(imds.get("meta-data/slow") for _ in range(20)), return_exceptions=True)
            connector = imds._transport._session.connector  # type: ignore[union-attr]
            assert connector is not None
            assert sum(len(c) for c in connector._conns.values()) <= MAX_CONNECTIONS
            assert not connector._acquired  # every answer read or released, timeouts too
    assert sum(isinstance(r, IMDSNotFoundError) for r in results) == 200
    assert all(isinstance(r, IMDSError) and r.status is None for r in results[200:])
    assert emu.counters.total("GET", 404) == 1200


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(400, "fail"), (401, "re-put"), (403, "fail"), (404, "absent"), (405, "fail"),
     (408, "retry"), (429, "retry"), (500, "retry"), (503, "retry"), ("drop", "retry"),
     ("hold", "retry")],
    ids=lambda v: str(v))
async def test_c51_the_credentials_leaf_answering_once_with_each_status(
        status: int | str, outcome: str) -> None:
    """aws-sdk-js-v3 PR #7569, aws-sdk-js-v3 #5073, oci-python-sdk #725, arrow-rs #2609: the
    credentials leaf answers once with each of these, then normally."""
    first = status if isinstance(status, str) else (status, b"<title>x</title>")
    script = Scripted(dict(TREE)).add(LEAF, first)
    async with raw_server(script.handle) as url, IMDSClient(endpoint=url, timeout=0.3) as imds:
        if outcome in ("retry", "re-put"):
            assert await imds.get_json("meta-data/iam/security-credentials/role") == {
                "Code": "Success"}
        elif outcome == "absent":
            with pytest.raises(IMDSNotFoundError):
                await imds.get("meta-data/iam/security-credentials/role")
        else:
            with pytest.raises(IMDSHTTPError) as info:
                await imds.get("meta-data/iam/security-credentials/role")
            assert info.value.status == status and str(status) in str(info.value)
    expected = {"retry": 2, "re-put": 2, "absent": 1, "fail": 1}[outcome]
    assert script.methods(LEAF) == ["GET"] * expected
    assert script.methods(TOKEN_PATH) == ["PUT"] * (2 if outcome == "re-put" else 1)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(400, "fail"), (401, "fail"), (403, "v1"), (404, "v1"), (405, "v1"), (408, "retry"),
     (429, "retry"), (500, "retry"), (503, "retry"), ("drop", "retry"), ("hold", "retry")],
    ids=lambda v: str(v))
async def test_c51_the_token_put_answering_once_with_each_status(
        status: int | str, outcome: str) -> None:
    """aws-sdk-js-v3 PR #7569 and the rest of C51, on the PUT: 403/404/405 lead to IMDSv1,
    400 fails naming the status, the rest is retried as a PUT."""
    first = status if isinstance(status, str) else (status, b"")
    script = Scripted(dict(TREE)).add(TOKEN_PATH, first)
    async with raw_server(script.handle) as url, IMDSClient(endpoint=url, timeout=0.3) as imds:
        if outcome == "fail":
            with pytest.raises(IMDSTokenError) as info:
                await imds.get("meta-data/instance-id")
            assert info.value.status == status and str(status) in str(info.value)
        else:
            assert await imds.get("meta-data/instance-id") == "i-0abc"
    puts = script.methods(TOKEN_PATH)
    assert puts == ["PUT"] * (2 if outcome == "retry" else 1)
    gets = [t for m, p, t in script.seen if m == "GET"]
    assert gets == {"retry": [script.token], "v1": [None], "fail": []}[outcome]


@pytest.mark.parametrize(
    ("record", "expected"),
    [(Record(b"", 404), None), (Record(b""), b""), (Record(b"SGVsbG8="), b"SGVsbG8="),
     (Record(os.urandom(16384), content_type="application/octet-stream"), "random"),
     (Record(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", content_type="application/octet-stream"),
      b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03")],
    ids=["absent", "empty", "base64-looking", "16KiB-random", "gzip"])
async def test_c52_user_data_is_bytes_exactly_as_served(record: Record,
                                                        expected: bytes | str | None) -> None:
    """cloud-init #4386, amazon.aws PR #1575, bolt #3095: user-data 404, empty, text that looks
    like base64, 16 KiB of random bytes, gzip bytes without Content-Encoding."""
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        emu.set_response("/latest/user-data", record)
        if expected is None:
            with pytest.raises(IMDSNotFoundError):
                await imds.get_bytes("user-data")
        else:
            assert await imds.get_bytes("user-data") == (
                record.body if expected == "random" else expected)
        snap = await imds.dump()
    as_json = json.loads(snap.dumps())["responses"]["/latest/user-data"]
    if expected is None:
        assert as_json == {"status": 404}
    elif record.text() is None:
        assert base64.b64decode(as_json["body_base64"]) == record.body
    else:
        assert as_json["body"] == record.body.decode()


async def test_c49_an_ipv6_loopback_endpoint_is_bracketed_and_ipv4_there_fails_fast() -> None:
    """ec2-macos-init PR #70, cloud-init #4316, aws-ec2-imdsv2-get PR #6: the service listens on
    ``::1`` only; the IPv6 endpoint works, IPv4 on that port is refused and fails fast."""
    try:
        emu = Emulator(host="::1")
        await emu.start()
    except OSError as exc:  # pragma: no cover - a host without IPv6 loopback
        pytest.skip(f"no IPv6 loopback here: {exc}")
    try:
        assert emu.url.startswith("http://[::1]:")
        async with IMDSClient(endpoint=emu.url) as imds:
            assert (await imds.get("meta-data/instance-id")).startswith("i-")
        v4 = f"http://127.0.0.1:{emu.port}"
        async with IMDSClient(endpoint=v4, timeout=0.5) as imds:
            start = time.monotonic()
            with pytest.raises(IMDSConnectionError):
                await imds.get("meta-data/instance-id")
            assert time.monotonic() - start < 0.5
        hosts = {t.headers.get("Host", "") for t in emu.counters.trace}
        assert hosts and all(h.startswith("[::1]:") for h in hosts)
    finally:
        await emu.stop()


async def test_c48_wait_until_ready_rides_out_nothing_listening_then_401s() -> None:
    """cloud-init PR #5565, NixOS/amis #137: nothing listens for a while (90 s there, 0.6 s
    here), then every GET answers 401 even with a fresh token (20 s there, 6 GETs here), then
    the service is normal. The wait polls through both and returns the leaf."""
    with unanswered_port() as url:
        pass  # a port where nothing listens: refused until the service starts below
    port = int(url.rsplit(":", 1)[1])
    script = Scripted(dict(TREE)).add(MD + "instance-id", *[(401, b"")] * 6)

    async def start_late() -> asyncio.Server:
        await asyncio.sleep(0.6)
        return await asyncio.start_server(script.handle, "127.0.0.1", port)

    starting = asyncio.ensure_future(start_late())
    try:
        async with IMDSClient(endpoint=url, timeout=0.3) as imds:
            start = time.monotonic()
            assert await wait_until_ready(imds, 10) == "i-0abc"
            assert time.monotonic() - start < 10
    finally:
        server = await starting
        server.close()
        await server.wait_closed()
    assert [m for m, p, _ in script.seen if p == MD + "instance-id"] == ["GET"] * 7


async def test_c48_wait_until_ready_fails_with_one_error_listing_what_it_saw() -> None:
    """cloud-init PR #5565: the deadline passes; one error names the polls and what each saw,
    and the CLI with --wait exits 1 (never 0 having fetched nothing)."""
    with unanswered_port() as url:
        async with IMDSClient(endpoint=url, timeout=0.2) as imds:
            with pytest.raises(IMDSTimeoutError) as info:
                await wait_until_ready(imds, 1.0)
        code, out, err = await run_cli("--endpoint", url, "--timeout", "0.2", "--wait", "1",
                                       "get", "meta-data/instance-id")
    message = str(info.value)
    assert message.startswith("/latest/meta-data/instance-id: IMDS not ready within 1 s after ")
    assert "IMDSUnreachableError" in message and " x" in message
    assert code == 1 and out == b"" and b"not ready within 1 s" in err
