"""Hostile input found by trying to break the client, the CLI and their files: each test is a
case that once went wrong (a file written after a whole crawl into a directory, credentials in a
world-readable file, a proxy password in doctor's report, a misleading config-file error, a
status message that claimed retries)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web
from cli_terminal import on_a_terminal
from hostile_servers import TOKEN_PATH, http_server, token_answer

from aioimds import (
    IMDSClient,
    IMDSConfig,
    IMDSConfigError,
    IMDSHTTPError,
    IMDSTimeoutError,
    IMDSUnreachableError,
    Snapshot,
)
from aioimds.cli import main
from aioimds.cli.environment import proxies
from aioimds.cli.output import umask
from aioimds.emulator import Emulator, default_snapshot
from aioimds.ready import _what
from aioimds.snapshot import Record, SnapshotFormatError

CREDS = "/latest/meta-data/iam/security-credentials/aioimds-demo-role"


async def cli(capsysbinary: pytest.CaptureFixture[bytes], *argv: str) -> tuple[int, bytes, str]:
    """``main(argv)`` in a thread (it runs its own event loop), the emulator on the test's."""
    rc = await asyncio.to_thread(main, list(argv))
    out, err = capsysbinary.readouterr()
    return rc, out, err.decode()


async def test_dump_into_a_directory_fails_before_any_request(
        capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path) -> None:
    async with Emulator() as emu:
        rc, out, err = await cli(capsysbinary, "--endpoint", emu.url, "dump", "-o",
                                 str(tmp_path))
        sent = emu.counters.total()
    assert (rc, out, sent) == (2, b"", 0)
    assert "is a directory" in err and str(tmp_path) in err
    assert os.listdir(tmp_path) == []


async def test_get_of_role_credentials_into_a_file_makes_it_0600(
        capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path) -> None:
    creds, region = tmp_path / "creds.json", tmp_path / "region"
    async with Emulator() as emu:
        rc1, _, _ = await cli(capsysbinary, "--endpoint", emu.url, "get",
                              CREDS.removeprefix("/latest/"), "-o", str(creds))
        rc2, _, _ = await cli(capsysbinary, "--endpoint", emu.url, "get",
                              "meta-data/placement/region", "-o", str(region))
    assert (rc1, rc2) == (0, 0)
    assert creds.read_bytes() == default_snapshot()[CREDS].body  # as served, secrets kept
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert stat.S_IMODE(region.stat().st_mode) == 0o666 & ~umask()
    assert region.read_text() == "ap-northeast-1"


@pytest.mark.parametrize(("value", "shown"), [
    ("http://user:s3cret@proxy:3128", "http://user:***@proxy:3128"),
    ("user:s3cret@proxy:3128", "user:***@proxy:3128"),  # curl takes it without a scheme
    ("http://user:p@ss@s3cret@proxy:3128", "http://user:***@proxy:3128"),
    ("http://user:pa/s3cret@proxy:3128", "http://user:***@proxy:3128"),
    ("http://s3cret-api-key@proxy:3128", "http://***@proxy:3128"),
    ("socks5h://u:s3cret@[::1]:1080", "socks5h://u:***@[::1]:1080"),
    ("http://proxy:3128", "http://proxy:3128"),
])
def test_doctor_shows_no_part_of_a_proxy_password(value: str, shown: str) -> None:
    assert proxies({"HTTPS_PROXY": value}) == {"HTTPS_PROXY": shown}


async def test_doctor_report_never_holds_the_proxy_password(
        capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "user:s3cret@proxy.example:3128")
    monkeypatch.setenv("ALL_PROXY", "http://user:p@s3cret@proxy.example:3128")
    async with Emulator() as emu:
        rc, out, err = await cli(capsysbinary, "--endpoint", emu.url, "doctor", "-f", "json")
    report = json.loads(out)
    assert report["environment"]["proxies"] == {
        "HTTP_PROXY": "user:***@proxy.example:3128",
        "ALL_PROXY": "http://user:***@proxy.example:3128"}
    assert "s3cret" not in out.decode() + err and rc == 1  # the proxy is a finding


def test_a_config_file_starting_with_a_byte_order_mark_says_so(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_bytes(b"\xef\xbb\xbf[default]\nmetadata_service_timeout = 5\n")
    with pytest.raises(IMDSConfigError) as info:
        IMDSConfig.from_environment({"AWS_CONFIG_FILE": str(path)})
    message = str(info.value)
    assert f"{path}: line 1: it starts with a UTF-8 byte order mark" in message
    assert "\n" not in message and "[section]" not in message


@pytest.mark.parametrize(("status", "message"), [
    (999, "unexpected status 999"),  # not retried, so not "after retries"
    (408, "request timeout (408) after retries"),
    (502, "server error (502) after retries"),
])
async def test_a_status_error_says_retries_only_when_there_were_some(
        status: int, message: str) -> None:
    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        if request.method == "PUT" and request.path == TOKEN_PATH:
            return token_answer()
        return web.Response(status=status)

    async with http_server(handler) as served, IMDSClient(endpoint=served.url) as imds:
        with pytest.raises(IMDSHTTPError) as info:
            await imds.get("meta-data/ami-id")
    gets = len(served.gets())
    assert info.value.status == status and str(info.value).endswith(message)
    assert gets == (1 if status == 999 else 3)


@pytest.mark.parametrize("value", ["false", 0, 1, None, "no"])
def test_cache_must_be_a_bool_as_the_other_switches(value: object) -> None:
    with pytest.raises(IMDSConfigError, match="cache must be True or False"):
        IMDSConfig(cache=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("endpoint", [
    "http://user:s3cret@127.0.0.1:8080",
    "http://user:s3/cret@127.0.0.1:8080",  # a / in the password: yarl cannot parse it
    "http://user:s3cret@127.0.0.1:99999",
    "http://s3cret@127.0.0.1:8080",
    "http://user:s3cret@127.0.0.1:8080/latest/",
])
def test_an_endpoint_with_a_password_is_refused_without_showing_it(endpoint: str) -> None:
    with pytest.raises(IMDSConfigError) as info:
        IMDSConfig(endpoint=endpoint)
    assert "s3" not in str(info.value) and "***@127.0.0.1" in str(info.value)
    with pytest.raises(IMDSConfigError) as from_env:
        IMDSConfig.from_environment({"AWS_EC2_METADATA_SERVICE_ENDPOINT": endpoint},
                                    config_file=False)
    assert "s3" not in str(from_env.value)
    assert "AWS_EC2_METADATA_SERVICE_ENDPOINT" in str(from_env.value)


def test_a_deeply_nested_snapshot_file_is_a_format_error(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(SnapshotFormatError, match="not JSON: nested too deeply"):
        Snapshot.load(deep)


def test_a_snapshot_that_is_not_json_keeps_its_text_out_of_the_error() -> None:
    text = '{"format": "imds-snapshot/1", "responses": {"SecretAccessKey": "s3cret"}} x'
    with pytest.raises(SnapshotFormatError) as info:
        Snapshot.loads(text)
    err = info.value
    assert str(err).startswith("not JSON: Extra data")
    assert err.__cause__ is None and err.__context__ is None  # no JSONDecodeError.doc


async def test_cli_diff_of_a_deeply_nested_file_exits_2_without_a_traceback(
        capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    rc, _, err = await cli(capsysbinary, "diff", str(deep), str(deep))
    assert rc == 2 and "nested too deeply" in err and "Traceback" not in err


def test_a_long_poll_error_is_cut_with_a_mark_in_the_wait_summary() -> None:
    long = IMDSUnreachableError("no answer from http://127.0.0.1:1; not on EC2? use "
                                "--emulator or --endpoint (the last attempt: refused)")
    short = IMDSTimeoutError("no complete answer within 1 s")
    assert _what(short) == "IMDSTimeoutError (no complete answer within 1 s)"
    described = _what(long)
    assert described.endswith("\u2026)") and len(described) <= len("IMDSUnreachableError ()") + 80
    assert long.message.startswith(described.removeprefix("IMDSUnreachableError (")[:-2])


def test_ls_on_a_terminal_escapes_what_would_drive_the_terminal() -> None:
    hostile = b"ami-id\n\x1b]0;PWNED\x07\x1b[2Jevil\n\xc2\x9bcsi\n"
    with Emulator().in_thread() as emu:
        emu.set_response("/latest/meta-data/", Record(hostile))
        rc, shown = on_a_terminal("--endpoint", emu.url, "ls", "meta-data/")[:2]
        piped = subprocess.run([sys.executable, "-m", "aioimds", "--endpoint", emu.url, "ls",
                                "meta-data/"], capture_output=True, timeout=60, check=False,
                               env={**os.environ, "AWS_CONFIG_FILE": os.devnull})
    assert rc == 0 and b"\x1b" not in shown and b"\x07" not in shown and b"\xc2\x9b" not in shown
    assert shown == b"ami-id\r\n\\x1b]0;PWNED\\x07\\x1b[2Jevil\r\n\\x9bcsi\r\n"
    assert piped.returncode == 0 and piped.stdout == hostile  # a pipe gets it as served
