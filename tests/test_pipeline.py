"""The request pipeline against servers that behave the way real deployments do: every case of
issue 11 ("never a silent empty answer"), each driven over HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path

import pytest
from aiohttp import web
from hostile_servers import (
    TOKEN,
    TOKEN_PATH,
    TTL_H,
    http_server,
    raw_server,
    raw_token_answer,
    read_request,
    run_cli,
    token_answer,
    unanswered_port,
)

from aioimds import (
    IMDSClient,
    IMDSConnectionError,
    IMDSCrawlError,
    IMDSResponseError,
    IMDSUnreachableError,
    Record,
    Snapshot,
)
from aioimds.emulator import Emulator, Faults, PathFault, default_snapshot

MD = "/latest/meta-data/"
TAGS = MD + "tags/instance/"


async def not_found(request: web.BaseRequest) -> web.Response:
    return web.Response(status=404, text="<html>Not Found</html>", content_type="text/html")


# -- silent or misleading answers --------------------------------------------------------------

async def test_a_server_answering_404_everywhere_is_not_an_imds_for_dump_and_list() -> None:
    """The PUT's 404 means IMDSv1; the 404 of /latest/ then means "not an IMDS", never {}."""
    async with http_server(not_found) as srv, IMDSClient(endpoint=srv.url) as imds:
        with pytest.raises(IMDSCrawlError) as info:
            await imds.dump()
        with pytest.raises(IMDSResponseError, match="not an IMDS") as listed:
            await imds.list("")
    assert list(info.value.failures) == ["/latest/"]
    assert "not an IMDS" in info.value.failures["/latest/"].message
    assert listed.value.path == "/latest/" and listed.value.status == 404


@pytest.mark.parametrize("command", [["dump"], ["ls"], ["dump", "--partial"]])
async def test_the_cli_exits_1_and_prints_no_empty_dump_for_a_404_server(
        command: list[str]) -> None:
    async with http_server(not_found) as srv:
        code, out, err = await run_cli("--endpoint", srv.url, *command)
    assert code == 1
    assert b"not an IMDS" in err and b"Traceback" not in err
    assert out == b""  # no empty dump, not even with --partial


def tags_tree(*keys: str) -> Snapshot:
    responses = dict(default_snapshot().responses)
    responses[MD] = Record(responses[MD].body + b"\ntags/")
    responses[MD + "tags/"] = Record(b"instance/")
    responses[TAGS] = Record("\n".join(keys).encode())
    for key in keys:
        if "/" not in key:
            responses[TAGS + key] = Record(f"value of {key}".encode())
    return Snapshot(responses)


async def test_a_tag_key_with_a_slash_is_skipped_and_its_siblings_survive(
        caplog: pytest.LogCaptureFixture) -> None:
    """cloud-init #4012: a tag key ``a/b`` made the whole listing fail, and ``tags()`` raise."""
    tree = tags_tree("Name", "a/b", "team")
    caplog.set_level(logging.WARNING, logger="aioimds")
    async with Emulator(tree) as emu, IMDSClient(endpoint=emu.url) as imds:
        result = await imds.dump(partial=True)
        tags = await imds.tags()
    assert result.complete and result.skipped == {TAGS: ["a/b"]}
    assert result.snapshot[TAGS].body == b"Name\na/b\nteam"  # the listing record, as served
    assert result.snapshot[TAGS + "Name"].body == b"value of Name"
    assert result.snapshot[TAGS + "team"].body == b"value of team"
    assert tags == {"Name": "value of Name", "team": "value of team"}
    assert "'a/b'" in caplog.text
    assert not [t for t in emu.counters.trace if t.path.startswith(TAGS + "a")]


async def test_the_cli_dump_of_a_tree_with_a_slash_tag_key_exits_0_with_a_warning() -> None:
    tree = tags_tree("Name", "a/b")
    async with Emulator(tree) as emu:
        code, out, err = await run_cli("--endpoint", emu.url, "-v", "dump", "--format",
                                       "snapshot")
    assert code == 0, err
    assert json.loads(out)["responses"][TAGS] == {"body": "Name\na/b"}
    assert b"a/b" in err


async def test_a_partial_dump_marks_its_failed_paths_in_the_snapshot() -> None:
    failing = MD + "ami-id"
    faults = Faults(path_faults=[PathFault(failing, status=400, count=100)])
    async with Emulator(faults=faults) as emu:
        code, out, _ = await run_cli("--endpoint", emu.url, "dump", "--partial", "--format",
                                       "snapshot")
        async with IMDSClient(endpoint=emu.url) as imds:
            result = await imds.dump(partial=True)
    assert code == 1
    snap = json.loads(out)
    assert set(snap["failures"]) == {failing} and "400" in snap["failures"][failing]
    assert failing not in snap["responses"]
    assert Snapshot.from_json(snap).failures == result.snapshot.failures
    complete = default_snapshot().subtree()
    assert "failures" not in complete.to_json()


async def test_serve_ignores_the_failures_of_a_partial_snapshot(tmp_path: Path) -> None:
    snap = Snapshot(default_snapshot().subtree().responses,
                    failures={MD + "ami-id": "unexpected status 400"})
    path = tmp_path / "partial.json"
    snap.save(path)
    loaded = Snapshot.load(path)
    assert loaded == snap and loaded.failures == {MD + "ami-id": "unexpected status 400"}
    async with Emulator(loaded) as emu, IMDSClient(endpoint=emu.url) as imds:
        again = await imds.dump()
    assert again.failures == {} and again == Snapshot(loaded.responses)


# -- a dead endpoint fails fast ----------------------------------------------------------------

async def test_a_dead_endpoint_fails_get_and_dump_within_about_twice_the_timeout() -> None:
    """An endpoint that never answers (a laptop, any host off EC2): 4.3 s for get, 11 s for
    dump before; now about 2 x the timeout, naming the endpoint and what to do."""
    timeout = 0.4
    with unanswered_port() as url:
        async with IMDSClient(endpoint=url, timeout=timeout) as imds:
            start = time.monotonic()
            with pytest.raises(IMDSUnreachableError) as got:
                await imds.get("meta-data/instance-id")
            get_took = time.monotonic() - start
        async with IMDSClient(endpoint=url, timeout=timeout) as imds:
            start = time.monotonic()
            result = await imds.dump(partial=True)
            dump_took = time.monotonic() - start
    message = str(got.value)
    assert f"no answer from {url}; not on EC2? use --emulator or --endpoint" in message
    assert "hop limit" not in message
    # two attempts of a connect that gets 90% of the timeout, a backoff, and scheduling slack
    assert get_took < 2 * timeout + 0.5 and dump_took < 2 * timeout + 0.5
    assert list(result.failures) == ["/latest/"]
    assert isinstance(result.failures["/latest/"], IMDSUnreachableError)


async def test_the_cli_against_a_dead_endpoint_gives_no_hop_limit_advice() -> None:
    with unanswered_port() as url:
        code, _, err = await run_cli("--endpoint", url, "--timeout", "0.4", "-v", "get",
                                     "meta-data/instance-id")
    assert code == 1
    assert b"no answer from " + url.encode() + b"; not on EC2? use --emulator or --endpoint" \
        in err
    assert b"hop limit" not in err and b"hop-limit" not in err and b"Traceback" not in err


async def test_a_refused_connection_is_the_same_dead_endpoint_error() -> None:
    with unanswered_port() as url:
        pass  # closed: nothing listens there any more
    async with IMDSClient(endpoint=url, timeout=0.4) as imds:
        with pytest.raises(IMDSUnreachableError, match="not on EC2"):
            await imds.get("meta-data/instance-id")


# -- the token PUT -----------------------------------------------------------------------------

def put_server(first_put_delay: float, *, tokens_required: bool):  # type: ignore[no-untyped-def]
    """A service whose first token PUT is answered after ``first_put_delay`` seconds."""
    puts = 0

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        nonlocal puts
        if request.method == "PUT":
            puts += 1
            if puts == 1:
                await asyncio.sleep(first_put_delay)
            return token_answer()
        if request.headers.get("X-aws-ec2-metadata-token") == TOKEN:
            return web.Response(text="i-0123456789abcdef0")
        if tokens_required:
            return web.Response(status=401)
        return web.Response(text="i-0123456789abcdef0")

    return handler


@pytest.mark.parametrize("tokens_required", [True, False], ids=["required", "optional"])
@pytest.mark.parametrize("delay", [30.0, 0.75], ids=["never-answered", "answered-late"])
async def test_a_put_that_times_out_once_is_retried_not_taken_for_the_hop_limit(
        tokens_required: bool, delay: float) -> None:
    """A first PUT answered after 1.5 s (timeout 1; scaled here to 0.75 s and 0.5 s), or never:
    taken at once for the hop-limit case before. Now it is retried, and the token is used."""
    handler = put_server(delay, tokens_required=tokens_required)
    async with http_server(handler) as srv, IMDSClient(endpoint=srv.url, timeout=0.5) as imds:
        assert await imds.get("meta-data/instance-id") == "i-0123456789abcdef0"
        assert not imds._tokens.using_v1  # type: ignore[union-attr]
    assert [s.method for s in srv.seen] == ["PUT", "PUT", "GET"]
    assert srv.seen[-1].token == TOKEN


async def test_many_clients_meet_a_service_leaving_their_first_connection_unanswered() -> None:
    """1,000 clients against a service that admits 100 new connections a second and leaves the
    others unanswered once: 861 credential reads failed (tokens required), or went over IMDSv1
    for 300 s (tokens optional). Scaled: 60 clients, the first 60 connections held."""
    clients, held = 60, 60
    connections = 0
    answered_gets: list[bool] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        if connections <= held:
            await asyncio.sleep(3600)  # read nothing, answer nothing
        while True:
            method, _, headers = await read_request(reader)
            if method == "PUT":
                writer.write(raw_token_answer())
            else:
                ok = headers.get("x-aws-ec2-metadata-token") == TOKEN
                answered_gets.append(ok)
                body = b"role" if ok else b""
                status = b"200 OK" if ok else b"401 Unauthorized"
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)
            await writer.drain()

    async with raw_server(handle) as url:
        async def one() -> str:
            async with IMDSClient(endpoint=url, timeout=0.5) as imds:
                return await imds.get("meta-data/iam/security-credentials/")

        results = await asyncio.gather(*(one() for _ in range(clients)),
                                       return_exceptions=True)
    assert results == ["role"] * clients
    assert answered_gets == [True] * clients  # every read carried a token: none went IMDSv1


async def test_a_put_whose_connection_is_dropped_falls_back_to_imdsv1_after_its_retries() -> None:
    """The PUT's connection closes without an answer on every attempt: as botocore and the Go
    SDK, the request then goes over IMDSv1 (where allowed) instead of raising."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            method, _, _ = await read_request(reader)
            if method == "PUT":
                return  # closed without an answer
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ni-01")
            await writer.drain()

    async with raw_server(handle) as url, IMDSClient(endpoint=url, attempts=3) as imds:
        assert await imds.get("meta-data/instance-id") == "i-01"
        assert imds.token_puts == 1 and imds._tokens.using_v1  # type: ignore[union-attr]


async def test_an_echoed_ttl_of_0_means_a_new_put_for_each_call() -> None:
    """The echoed TTL 0 was ignored and the token kept for 21,600 s; the Go SDK's tests
    ("secure multi token") expect a PUT for each call."""
    async def handler(request: web.BaseRequest) -> web.Response:
        if request.method == "PUT":
            return web.Response(text=TOKEN, headers={TTL_H: "0"})
        return web.Response(text="x")

    async with http_server(handler) as srv, IMDSClient(endpoint=srv.url) as imds:
        for _ in range(3):
            assert await imds.get("meta-data/instance-id") == "x"
    assert [s.method for s in srv.seen] == ["PUT", "GET"] * 3
    assert all(s.token == TOKEN for s in srv.seen if s.method == "GET")


# -- retries on the wire -----------------------------------------------------------------------

@pytest.mark.parametrize("attempts", [1, 3])
async def test_every_attempt_on_the_wire_is_one_of_ours(attempts: int) -> None:
    """aiohttp retried a request itself after a dropped keep-alive connection: attempts=1 put 2
    requests on the wire and attempts=3 put 6."""
    gets = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal gets
        while True:
            method, path, _ = await read_request(reader)
            if method == "PUT" and path == TOKEN_PATH:
                writer.write(raw_token_answer())  # keep-alive: the GET reuses this connection
                await writer.drain()
                continue
            gets += 1
            return  # the kept-alive connection closes without an answer

    async with raw_server(handle) as url, IMDSClient(endpoint=url, attempts=attempts) as imds:
        with pytest.raises(IMDSConnectionError):
            await imds.get("meta-data/instance-id")
    assert gets == attempts


@pytest.mark.parametrize("attempts", [1, 3])
async def test_the_emulator_counts_one_request_on_the_wire_per_attempt(attempts: int) -> None:
    """The same on the emulator, which closes every connection without an answer: each of
    the PUT's attempts and each of the IMDSv1 GET's is one request in its trace."""
    async with Emulator(faults=Faults(drop_rate=1.0)) as emu:
        async with IMDSClient(endpoint=emu.url, attempts=attempts, timeout=0.5) as imds:
            with pytest.raises(IMDSConnectionError):
                await imds.get("meta-data/instance-id")
    assert [t.method for t in emu.counters.trace] == ["PUT"] * attempts + ["GET"] * attempts
    assert emu.counters.requests[("PUT", 0)] == emu.counters.requests[("GET", 0)] == attempts


# -- a dump rides out throttling on a time basis -----------------------------------------------

async def test_a_long_throttle_never_turns_into_failed_paths_while_the_service_answers() -> None:
    """429s inside a dump are retried until the dump's deadline, not for a count: with one
    attempt per request and a service allowing 40 requests a second, the dump completes."""
    async with Emulator(faults=Faults(throttle_rps=40)) as emu:
        async with IMDSClient(endpoint=emu.url) as imds:
            snap = await imds.dump(attempts=1)
    assert snap == emu.snapshot.subtree()
    assert emu.counters.requests[("GET", 429)] > 0


async def test_a_dump_deadline_ends_a_throttled_dump_with_failures_not_a_hang() -> None:
    async with Emulator(faults=Faults(throttle_rps=5)) as emu:
        async with IMDSClient(endpoint=emu.url) as imds:
            start = time.monotonic()
            result = await imds.dump(partial=True, deadline=1.0)
            took = time.monotonic() - start
    assert not result.complete and len(result.snapshot) > 0
    assert took < 1.0 + imds.config.timeout + 1.0
    assert set(result.failures) <= set(emu.snapshot.subtree())
    for err in result.failures.values():  # throttled to the end, or not sent after it
        assert err.status == 429 or "deadline" in err.message or "not requested" in err.message


# -- configuration on the command line ---------------------------------------------------------

async def cli_with(env: dict[str, str], *args: str) -> tuple[int, bytes, bytes]:
    """``python -m aioimds ARGS`` with ``env`` over the current environment."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aioimds", *args, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out, err


async def test_a_broken_config_file_never_blocks_emulator_and_is_one_line_otherwise(
        tmp_path: Path) -> None:
    """A broken config file blocked even --emulator, with a three-line error."""
    config = tmp_path / "config"
    config.write_text("[default]\nregion = x\nthis line is broken\n")
    env = {"AWS_CONFIG_FILE": str(config), "AWS_PROFILE": "gone"}
    code, out, _ = await cli_with(env, "--emulator", "get", "meta-data/placement/region")
    assert (code, out) == (0, b"ap-northeast-1")
    async with Emulator() as emu:
        code, _, err = await cli_with({"AWS_CONFIG_FILE": str(config)}, "--endpoint", emu.url,
                                      "get", "meta-data/placement/region")
    assert code == 2
    assert err.decode().strip().splitlines() == [
        f"aioimds: error: malformed AWS config file {config}: line 3: neither 'key = value' "
        "nor a [section] header"]


async def test_profile_option_and_a_missing_profile(tmp_path: Path) -> None:
    """An AWS_PROFILE naming a profile that is not in the file was ignored; botocore raises."""
    config = tmp_path / "config"
    async with Emulator() as emu:
        config.write_text(f"[profile lab]\nec2_metadata_service_endpoint = {emu.url}\n")
        env = {"AWS_CONFIG_FILE": str(config),
               "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
        code, out, _ = await cli_with(env, "--profile", "lab", "get",
                                      "meta-data/placement/region")
        assert (code, out) == (0, b"ap-northeast-1")
        code, _, err = await cli_with({**env, "AWS_PROFILE": "labb"}, "get",
                                      "meta-data/placement/region")
        opt_code, _, opt_err = await cli_with({**env, "AWS_PROFILE": "lab"}, "--profile",
                                              "nope", "get", "meta-data/placement/region")
    assert code == 2
    assert b"profile 'labb' (from AWS_PROFILE) is not in the AWS config file" in err
    assert b"unset AWS_PROFILE" in err
    assert opt_code == 2
    assert b"profile 'nope' (from --profile) is not in the AWS config file" in opt_err
    assert b"check the name given to --profile" in opt_err and b"AWS_PROFILE" not in opt_err


@pytest.mark.parametrize("mode", ["ipv6", "IPV6", "IPv6"])
def test_the_endpoint_mode_option_is_case_insensitive_too(mode: str) -> None:
    from aioimds.cli.parser import build_parser

    assert build_parser().parse_args(["--endpoint-mode", mode, "get", "x"]).endpoint_mode \
        == "IPv6"
