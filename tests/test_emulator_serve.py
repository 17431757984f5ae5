"""The emulator serving under faults, load and malformed input, and `aioimds serve`."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import socket

import aiohttp
import pytest
from conftest import TICK
from emulator_http import (
    REGION,
    TOKEN_PATH,
    TTL_H,
    assert_xhtml,
    call,
    get,
    new_token,
    raw,
)

from aioimds import Record, Snapshot, SnapshotFormatError
from aioimds.emulator import Emulator, Faults, PathFault, default_snapshot
from aioimds.emulator.serve import add_serve_arguments, emulator_from_args, run_serve

# -- faults ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("virtual_time")
async def test_latency_delays_every_answer(http) -> None:
    async with Emulator(latency=0.1, faults=Faults(latency=0.1), tokens="optional") as emu:
        for path in (REGION, "/latest/no-such-path"):
            start = asyncio.get_running_loop().time()
            await get(http, emu, path, None)
            assert asyncio.get_running_loop().time() - start >= 0.2 - TICK


@pytest.mark.usefixtures("virtual_time")
async def test_jitter_adds_seeded_random_delays(http) -> None:
    rng = random.Random(5)
    draws = [rng.uniform(0, 0.1) for _ in range(4)]
    async with Emulator(tokens="optional", faults=Faults(jitter=0.1), seed=5) as emu:
        for expected in draws:
            start = asyncio.get_running_loop().time()
            await get(http, emu, REGION, None)
            assert expected - TICK <= asyncio.get_running_loop().time() - start < expected + 0.1


async def test_faults_can_be_replaced_while_running(emu, http) -> None:
    token = await new_token(http, emu)
    emu.faults = Faults(error_rate=1.0)
    assert (await get(http, emu, REGION, token)).status in (500, 503)
    emu.faults = Faults()
    assert (await get(http, emu, REGION, token)).status == 200


async def test_error_rate_answers_500_or_503_with_xhtml_and_is_seeded(http) -> None:
    runs = []
    for _ in range(2):
        async with Emulator(tokens="optional", faults=Faults(error_rate=0.5), seed=3) as emu:
            replies = [await get(http, emu, REGION, None) for _ in range(30)]
        for reply in replies:
            if reply.status != 200:
                assert_xhtml(reply, reply.status)
        runs.append([r.status for r in replies])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 500, 503}


async def test_error_rate_spares_the_token_put(http) -> None:
    async with Emulator(faults=Faults(error_rate=1.0)) as emu:
        assert (await get(http, emu, REGION, await new_token(http, emu))).status in (500, 503)


@pytest.mark.usefixtures("virtual_time")
async def test_throttling_answers_429_beyond_the_rate(http) -> None:
    async with Emulator(tokens="optional", faults=Faults(throttle_rps=4)) as emu:
        statuses = [(await get(http, emu, REGION, None)).status for _ in range(3)]
        assert statuses == [200, 429, 429]  # burst max(1, 4 / 10) = 1
        reply = await get(http, emu, REGION, None)
        assert_xhtml(reply, 429)
        assert "Retry-After" not in reply.headers
        await asyncio.sleep(0.3)
        assert (await get(http, emu, REGION, None)).status == 200
        emu.faults.retry_after = 1.5
        assert (await get(http, emu, REGION, None)).headers["Retry-After"] == "1.5"


async def test_drop_rate_closes_the_connection_without_an_answer(http) -> None:
    async with Emulator(tokens="optional", faults=Faults(drop_rate=1.0)) as emu:
        assert await raw(emu, b"GET /latest/ HTTP/1.1\r\nHost: x\r\n\r\n") == b""
        assert emu.counters.requests == {("GET", 0): 1}
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await get(http, emu, REGION, None)


async def test_token_put_status_answers_every_put(emu, http) -> None:
    emu.faults.token_put_status = 404
    assert_xhtml(await call(http, "PUT", emu, TOKEN_PATH, {TTL_H: "60"}), 404)
    emu.faults.token_put_status = 405
    assert_xhtml(await call(http, "PUT", emu, TOKEN_PATH, {}), 405)
    assert emu.counters.token_puts == 2


@pytest.mark.usefixtures("virtual_time")
async def test_hold_token_put_never_answers_and_stop_releases_it(http) -> None:
    emu = Emulator(tokens="optional", faults=Faults(hold_token_put=True))
    await emu.start()
    before = asyncio.all_tasks()
    timeout = aiohttp.ClientTimeout(total=0.2)
    # The hop limit of 1 (elastic-ci-stack-for-aws #857, aws-c-auth #182).
    with pytest.raises(asyncio.TimeoutError):
        async with http.put(emu.url + TOKEN_PATH, headers={TTL_H: "9"}, timeout=timeout):
            pass
    # IMDSv1 still answers (aws-c-auth #182).
    assert (await get(http, emu, REGION, None)).status == 200
    put = f"PUT {TOKEN_PATH} HTTP/1.1\r\nHost: x\r\n{TTL_H}: 60\r\n\r\n".encode()
    held = asyncio.ensure_future(raw(emu, put))
    slow = asyncio.ensure_future(raw(emu, b"GET /latest/ HTTP/1.1\r\nHost: x\r\n\r\n"))
    emu.faults.latency = 30.0
    await asyncio.sleep(0.1)
    assert emu.counters.in_flight == 2
    start = asyncio.get_running_loop().time()
    await emu.stop()
    assert asyncio.get_running_loop().time() - start < 1.0
    assert await held == b"" and await slow == b""
    assert emu.counters.token_puts == 2
    assert emu.counters.requests[("PUT", 0)] == 2  # the timed-out one and the released one
    assert asyncio.all_tasks() <= before


@pytest.mark.usefixtures("virtual_time")
async def test_path_fault_delays_only_the_first_request(http) -> None:  # botocore #1791
    path = "/latest/meta-data/iam/security-credentials/"
    fault = PathFault(path, delay=0.3)
    async with Emulator(tokens="optional", faults=Faults(path_faults=[fault])) as emu:
        start = asyncio.get_running_loop().time()
        assert (await get(http, emu, path, None)).body == b"aioimds-demo-role"
        assert asyncio.get_running_loop().time() - start >= 0.3 - TICK
        start = asyncio.get_running_loop().time()
        await get(http, emu, path, None)
        assert asyncio.get_running_loop().time() - start < 0.25
        assert fault.hits == 1


async def test_path_faults_apply_in_order_and_skip_refused_requests(emu, http) -> None:
    emu.faults.path_faults = [PathFault(REGION, status=503), PathFault(REGION, status=429)]
    assert (await get(http, emu, REGION, None)).status == 401
    token = await new_token(http, emu)
    statuses = [(await get(http, emu, REGION + "?q", token)).status for _ in range(3)]
    assert statuses == [503, 429, 200]


async def test_max_connections_closes_the_excess_connections(http) -> None:
    async with Emulator(tokens="optional", faults=Faults(max_connections=1)) as emu:
        reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
        writer.write(b"GET /latest/ HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readuntil(b"user-data")).startswith(b"HTTP/1.1 200 OK")
        assert await raw(emu, b"GET /latest/ HTTP/1.1\r\nHost: x\r\n\r\n") == b""
        writer.close()
        await writer.wait_closed()
        for _ in range(100):  # the server notices the close within a few loop turns
            reply = await raw(emu, b"GET /latest/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if reply:
                break
            await asyncio.sleep(0.01)
        assert reply.startswith(b"HTTP/1.1 200 OK")


@pytest.mark.parametrize(
    "bad",
    [
        {"latency": -1},
        {"jitter": float("inf")},
        {"error_rate": 1.5},
        {"drop_rate": float("nan")},
        {"throttle_rps": 0},
        {"retry_after": -1},
        {"token_put_status": 99},
        {"max_token_ttl": 21601},
        {"revoke_every": 0},
        {"max_connections": 0},
    ],
)
def test_faults_reject_out_of_range_values(bad) -> None:
    with pytest.raises(ValueError):
        Faults(**bad)


def test_path_fault_rejects_bad_values() -> None:
    for kwargs in ({"path": "x"}, {"path": "/x", "status": 600}, {"path": "/x", "delay": -1}):
        with pytest.raises(ValueError):
            PathFault(**kwargs)


# -- life cycle, load, malformed input ------------------------------------------------------


async def test_url_and_port_exist_only_while_running() -> None:
    emu = Emulator()
    with pytest.raises(RuntimeError):
        emu.url  # noqa: B018
    url = await emu.start()
    assert url == emu.url == f"http://127.0.0.1:{emu.port}"
    with pytest.raises(RuntimeError):
        await emu.start()
    await emu.stop()
    await emu.stop()
    with pytest.raises(RuntimeError):
        emu.port  # noqa: B018
    with pytest.raises(ValueError):
        Emulator(tokens="sometimes")  # type: ignore[arg-type]


async def test_ipv6_loopback_url(http) -> None:
    try:
        socket.socket(socket.AF_INET6).close()
        emu = Emulator(host="::1", tokens="optional")
        await emu.start()
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback: {exc}")
    try:
        assert emu.url == f"http://[::1]:{emu.port}"
        assert (await get(http, emu, REGION, None)).body == b"ap-northeast-1"
    finally:
        await emu.stop()


async def test_ten_thousand_concurrent_token_puts() -> None:
    connector = aiohttp.TCPConnector(limit=500)
    async with Emulator(latency=0.01) as emu, aiohttp.ClientSession(connector=connector) as http:
        replies = await asyncio.gather(
            *(call(http, "PUT", emu, TOKEN_PATH, {TTL_H: "60"}) for _ in range(10_000))
        )
        assert {r.status for r in replies} == {200}
        assert len({r.body for r in replies}) == 10_000
        assert emu.counters.token_puts == 10_000 and emu.counters.max_in_flight > 100
        assert (await get(http, emu, REGION, replies[0].body.decode())).status == 200


MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET /latest/ HTTP/1.1\r\nno colon here\r\n\r\n",
    b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(64)),
    b"PUT /latest/api/token HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    b"GET /latest/ HTTP/9.9\r\n\r\n",
]


@pytest.mark.parametrize("data", MALFORMED, ids=["garbage", "header", "long", "tls", "len", "ver"])
async def test_malformed_requests_are_refused_without_harm(emu, http, data) -> None:
    reply = await raw(emu, data)
    assert reply == b"" or re.match(rb"HTTP/1\.[01] 4\d\d ", reply), reply[:40]
    assert (await get(http, emu, REGION, await new_token(http, emu))).status == 200


# -- serve ----------------------------------------------------------------------------------


def serve_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="aioimds serve")
    add_serve_arguments(parser)
    return parser.parse_args(argv)


def test_serve_options_build_the_emulator(tmp_path) -> None:
    emu = emulator_from_args(serve_args(
        "--tokens", "optional", "--latency-ms", "50", "--jitter-ms", "5", "--error-rate", "0.1",
        "--throttle-rps", "100", "--drop-rate", "0.01", "--hold-token-put", "--max-token-ttl",
        "60", "--revoke-every", "2.5", "--max-connections", "8", "--token-put-status", "404",
        "--retry-after", "1", "--seed", "4",
    ))
    assert (emu.tokens, emu.latency, emu.host) == ("optional", 0.05, "127.0.0.1")
    assert emu.faults == Faults(jitter=0.005, error_rate=0.1, throttle_rps=100, retry_after=1,
                                drop_rate=0.01, hold_token_put=True, token_put_status=404,
                                max_token_ttl=60, revoke_every=2.5, max_connections=8)
    assert emu.snapshot == default_snapshot() and not emu.counters.trace_enabled
    for bad in ("--error-rate=2", "--port=-1", "--throttle-rps=0", "--tokens=x", "--seed=x"):
        with pytest.raises(SystemExit):
            serve_args(bad)


async def test_run_serve_prints_the_url_and_stops_on_sigterm(http, tmp_path) -> None:
    snap_file = tmp_path / "tree.json"
    Snapshot({"/latest/": Record(body=b"meta-data")}).save(snap_file)
    lines: list[str] = []
    listening = asyncio.Event()

    def out(line: str) -> None:
        lines.append(line)
        listening.set()

    task = asyncio.ensure_future(run_serve(serve_args("--snapshot", str(snap_file)), out))
    await asyncio.wait_for(listening.wait(), 5)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", lines[0])
    async with http.get(lines[0] + "/latest/") as resp:
        assert resp.status == 401
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(task, 5) == 0


async def test_run_serve_raises_for_a_bad_snapshot_file(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something-else"}')
    with pytest.raises(SnapshotFormatError):
        await run_serve(serve_args("--snapshot", str(bad)), print)
    with pytest.raises(OSError):
        await run_serve(serve_args("--snapshot", str(tmp_path / "missing.json")), print)


@pytest.mark.parametrize(("host", "warns"), [
    ("127.0.0.1", False), ("127.0.0.2", False), ("::1", False), ("[::1]", False),
    ("localhost", False), ("0.0.0.0", True), ("::", True), ("10.1.2.3", True),
    ("imds.example", True),
])
def test_a_non_loopback_host_is_warned_about(host: str, warns: bool) -> None:
    from aioimds.emulator.serve import exposure_warning
    warning = exposure_warning(host)
    assert (warning is not None) == warns
    if warning is not None:
        assert host in warning and "fake credentials" in warning


async def test_run_serve_warns_on_stderr_before_binding_a_non_loopback_host(
        capsys: pytest.CaptureFixture[str]) -> None:
    # 192.0.2.1 (TEST-NET-1) is on no interface: the bind fails, no packet is sent.
    with pytest.raises(OSError):
        await run_serve(serve_args("--host", "192.0.2.1", "--port", "0"), print)
    err = capsys.readouterr().err
    assert err.startswith("aioimds: warning: serving on 192.0.2.1, not a loopback address")
