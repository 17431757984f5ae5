"""The request log: emu.requests in Python (one list with counters.trace), the on_request hook,
and `aioimds serve -v`, one line per request without the token."""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import urllib.request

import pytest
from emulator_http import REGION, TOKEN_H, TOKEN_PATH, get, new_token
from test_emulator_serve import serve_args

from aioimds.emulator import Emulator, TraceEntry
from aioimds.emulator.serve import add_serve_arguments, emulator_from_args, request_line


async def test_requests_lists_every_request_in_order_without_the_token(emu: Emulator,
                                                                        http) -> None:
    token = await new_token(http, emu)
    await get(http, emu, REGION, token)
    await get(http, emu, "/latest/meta-data/nope", token)
    assert emu.requests is emu.counters.trace
    assert [(r.method, r.path, r.status, r.token) for r in emu.requests] == [
        ("PUT", TOKEN_PATH, 200, False), ("GET", REGION, 200, True),
        ("GET", "/latest/meta-data/nope", 404, True)]
    assert token not in repr(emu.requests)
    emu.counters.reset()
    assert emu.requests == []


async def test_on_request_sees_each_request_and_a_failing_hook_is_only_logged(
    http, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[TraceEntry] = []
    async with Emulator(tokens="optional", on_request=seen.append) as emu:
        emu.counters.trace_enabled = False  # the hook does not depend on the trace
        await get(http, emu, REGION, None)
        assert [(e.path, e.status, e.token) for e in seen] == [(REGION, 200, False)]

        def broken(entry: TraceEntry) -> None:
            raise RuntimeError("hook bug")

        emu.on_request = broken
        with caplog.at_level(logging.ERROR, logger="aioimds.emulator"):
            assert (await get(http, emu, REGION, None)).status == 200
        assert "on_request hook failed for GET " + REGION in caplog.text


def test_request_line_says_method_path_status_and_token_presence() -> None:
    put = TraceEntry("PUT", TOKEN_PATH, 200, False, {})
    got = TraceEntry("GET", REGION + "?x=1", 401, True, {TOKEN_H: "<redacted>"})
    dropped = TraceEntry("GET", REGION, 0, True, {})
    assert request_line(put) == "PUT /latest/api/token 200 token=no"
    assert request_line(got) == f"GET {REGION}?x=1 401 token=yes"
    assert request_line(dropped) == f"GET {REGION} - token=yes"


async def test_serve_verbose_hands_one_line_per_request_to_the_log(http) -> None:
    lines: list[str] = []
    emu = emulator_from_args(serve_args("-v", "--tokens", "optional"), log=lines.append)
    async with emu:
        token = await new_token(http, emu)
        await get(http, emu, REGION, token)
        await get(http, emu, REGION + "/", None)
    assert lines == ["PUT /latest/api/token 200 token=no", f"GET {REGION} 200 token=yes",
                     f"GET {REGION}/ 200 token=no"]
    assert not any(token in line for line in lines)
    assert emulator_from_args(serve_args()).on_request is None


def test_serve_options_set_the_tags_switch() -> None:
    emu = emulator_from_args(serve_args("--instance-metadata-tags", "disabled"))
    assert emu.instance_metadata_tags == "disabled"
    assert emulator_from_args(serve_args()).instance_metadata_tags == "enabled"
    with pytest.raises(SystemExit):
        serve_args("--instance-metadata-tags", "off")


def test_aioimds_serve_v_prints_request_lines_to_stderr() -> None:
    with subprocess.Popen([sys.executable, "-m", "aioimds", "serve", "-v", "--port", "0"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        url = proc.stdout.readline().decode().strip()
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        put = urllib.request.Request(url + TOKEN_PATH, method="PUT",
                                     headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        with direct.open(put, timeout=10) as resp:
            token = resp.read().decode()
        with direct.open(urllib.request.Request(url + REGION, headers={TOKEN_H: token}),
                         timeout=10) as resp:
            assert resp.read() == b"ap-northeast-1"
        proc.send_signal(signal.SIGTERM)
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=20) == 0
    log = [line for line in err.splitlines() if " token=" in line]
    assert log == ["PUT /latest/api/token 200 token=no", f"GET {REGION} 200 token=yes"]
    assert token not in err


def test_serve_options_reuse_a_verbose_option_the_parser_already_has() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-v", "--verbose", action="count", default=0)
    add_serve_arguments(parser)  # no conflict: the same -v turns the request log on
    assert emulator_from_args(parser.parse_args(["-v"])).on_request is not None
    assert emulator_from_args(parser.parse_args([])).on_request is None
