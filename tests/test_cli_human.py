"""The CLI for people: the tree view, get on a terminal, -v logging, progress, files written
safely, global options after the command, sub-tree dumps and shell completion."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cli_terminal import on_a_terminal

from aioimds import Snapshot
from aioimds.cli import log as cli_log
from aioimds.cli import main
from aioimds.cli.output import umask
from aioimds.cli.tree import one_line, tree_lines
from aioimds.emulator import Emulator, Faults, default_snapshot
from aioimds.snapshot import Record

CREDS = "/latest/meta-data/iam/security-credentials/aioimds-demo-role"


async def cli(capsysbinary: pytest.CaptureFixture[bytes], *argv: str) -> tuple[int, bytes, str]:
    """``main(argv)`` in a thread (it runs its own event loop), the emulator on the test's."""
    rc = await asyncio.to_thread(main, list(argv))
    out, err = capsysbinary.readouterr()
    return rc, out, err.decode()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the tree view ---------------------------------------------------------------------------

async def test_dump_format_tree_is_indented_with_one_line_values(
        capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    async with Emulator() as emu:
        rc, out, _ = await cli(capsysbinary, "--endpoint", emu.url, "dump", "-f", "tree")
    lines = out.decode().splitlines()
    assert rc == 0 and lines[0] == "latest/"
    i = lines.index("  meta-data/")
    assert lines.index("    placement/") > i and "      region: ap-northeast-1" in lines
    assert "    public-keys/" in lines and "      0=aioimds-demo/" in lines
    (user_data,) = [line for line in lines if line.startswith("  user-data: ")]
    size = len(default_snapshot()["/latest/user-data"].body)
    assert user_data == f"  user-data: <{size} bytes, gzip, application/octet-stream>"
    secret = json.loads(default_snapshot()[CREDS].body)["SecretAccessKey"]
    assert secret not in out.decode() and all(len(line) <= 120 for line in lines)


@pytest.mark.parametrize(("body", "width", "shown"), [
    (b"ap-northeast-1", 40, "ap-northeast-1"),
    (b"line one\nline two\nline three", 40, "line one (+2 lines)"),
    (b"evil\x1b[2Jescape", 40, "evil\\x1b[2Jescape"),
    (b"x" * 50, 20, "x" * 17 + "..."),
    (b'{\n  "a": 1,\n  "b": [2]\n}', 40, '{"a": 1, "b": [2]}'),
    (b"", 40, '""'),
    (b"\xff\xfe", 40, "<2 bytes, text/plain>"),
], ids=["text", "lines", "control", "long", "json", "empty", "binary"])
def test_one_line_values(body: bytes, width: int, shown: str) -> None:
    assert one_line(Record(body), width) == shown


def test_tree_of_a_sub_tree_starts_at_its_root() -> None:
    lines = tree_lines(default_snapshot(), "/latest/meta-data/placement/")
    assert lines == ["meta-data/placement/", "  availability-zone: ap-northeast-1a",
                     "  availability-zone-id: apne1-az4", "  region: ap-northeast-1"]


# -- dump PATH and the formats of a sub-tree ----------------------------------------------

async def test_dump_path_dumps_only_that_sub_tree(capsysbinary: pytest.CaptureFixture[bytes]
                                                  ) -> None:
    async with Emulator() as emu:
        rc, out, _ = await cli(capsysbinary, "--endpoint", emu.url, "dump", "meta-data/placement")
        rc2, flat, _ = await cli(capsysbinary, "dump", "--endpoint", emu.url, "-f", "flat",
                                 "latest/meta-data/placement/")
        rc3, snap, _ = await cli(capsysbinary, "dump", "meta-data/placement", "-f", "snapshot",
                                 "--endpoint", emu.url)
    assert (rc, rc2, rc3) == (0, 0, 0)
    assert json.loads(out) == {"availability-zone": "ap-northeast-1a",
                               "availability-zone-id": "apne1-az4", "region": "ap-northeast-1"}
    assert flat.decode().splitlines()[-1] == "meta-data/placement/region: ap-northeast-1"
    assert Snapshot.loads(snap) == default_snapshot().subtree("/latest/meta-data/placement/")


async def test_dump_path_of_a_leaf_or_a_missing_path_says_so(
        capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    async with Emulator() as emu:
        leaf = await cli(capsysbinary, "--endpoint", emu.url, "dump", "meta-data/ami-id")
        missing = await cli(capsysbinary, "--endpoint", emu.url, "dump", "meta-data/nope")
    assert leaf[0] == 2 and leaf[1] == b"" and "is a leaf, not a listing" in leaf[2]
    assert missing[0] == 3 and missing[1] == b"" and "/latest/meta-data/nope/" in missing[2]


# -- get on a terminal -----------------------------------------------------------------------

def test_get_on_a_terminal_ends_with_a_newline_and_refuses_binary(tmp_path: Path) -> None:
    rc, out, _ = on_a_terminal("--emulator", "get", "meta-data/placement/region")
    assert (rc, out) == (0, b"ap-northeast-1\r\n")  # the terminal turns \n into \r\n
    rc, out, err = on_a_terminal("--emulator", "get", "user-data")
    assert rc == 2 and out == b""
    assert b"--output" in err and b"--raw" in err and b"binary" in err
    rc, out, _ = on_a_terminal("--emulator", "get", "user-data", "--raw")
    assert rc == 0 and out.startswith(b"\x1f\x8b")
    target = tmp_path / "user-data.gz"
    rc, out, _ = on_a_terminal("--emulator", "get", "user-data", "-o", str(target))
    assert rc == 0 and out == b""
    assert target.read_bytes() == default_snapshot()["/latest/user-data"].body


async def test_get_to_a_pipe_is_bytes_as_served(capsysbinary: pytest.CaptureFixture[bytes]
                                                ) -> None:
    async with Emulator() as emu:
        rc, out, _ = await cli(capsysbinary, "--endpoint", emu.url, "get", "user-data")
    assert rc == 0 and out == default_snapshot()["/latest/user-data"].body


# -- files: checked first, written whole, 0600 with secrets ---------------------------------

async def test_an_unwritable_output_fails_before_any_request(
        capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path) -> None:
    async with Emulator() as emu:
        rc, _, err = await cli(capsysbinary, "--endpoint", emu.url, "dump", "-o",
                               str(tmp_path / "no-such-dir" / "tree.json"))
        sent = emu.counters.total()
    assert rc == 2 and "no-such-dir" in err and sent == 0
    assert str(tmp_path / "no-such-dir" / "tree.json") in err and ".aioimds-" not in err


async def test_include_secrets_file_is_0600_and_others_follow_the_umask(
        capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path) -> None:
    secret, plain = tmp_path / "secret.json", tmp_path / "plain.json"
    async with Emulator() as emu:
        assert (await cli(capsysbinary, "--endpoint", emu.url, "dump", "--include-secrets",
                          "-o", str(secret)))[0] == 0
        assert (await cli(capsysbinary, "--endpoint", emu.url, "dump", "-o", str(plain)))[0] == 0
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~umask()
    assert json.loads(secret.read_text())["meta-data"]["iam"]["security-credentials"][
        "aioimds-demo-role"]["SecretAccessKey"] == json.loads(
        default_snapshot()[CREDS].body)["SecretAccessKey"]
    assert sorted(os.listdir(tmp_path)) == ["plain.json", "secret.json"]


async def test_a_failed_dump_leaves_no_file_behind(capsysbinary: pytest.CaptureFixture[bytes],
                                                   tmp_path: Path) -> None:
    target = tmp_path / "tree.json"
    rc, _, _ = await cli(capsysbinary, "--endpoint", f"http://127.0.0.1:{closed_port()}",
                         "--attempts", "1", "dump", "-o", str(target))
    assert rc == 1 and os.listdir(tmp_path) == []


# -- logging and progress --------------------------------------------------------------------

async def test_v_names_the_endpoint_and_why_the_token_and_a_dump_summary(
        capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    async with Emulator() as emu:
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", emu.url)
        rc, _, err = await cli(capsysbinary, "dump", "-v")
        requests, url = emu.counters.total(), emu.url
    assert rc == 0
    lines = err.splitlines()
    assert lines[0] == f"aioimds: endpoint {url} (variable AWS_EC2_METADATA_SERVICE_ENDPOINT)"
    (summary,) = [line for line in lines if line.startswith("aioimds: dump: ")]
    paths = len(default_snapshot().subtree())
    assert summary.startswith(f"aioimds: dump: {paths} paths in ")
    assert summary.endswith(f": {requests} requests, 0 retries, 0 429s, 0 drops")
    assert "aioimds: IMDSv2: requests sent with a session token (1 token PUT)" in lines


async def test_v_says_imdsv1_when_the_token_put_gets_no_answer(
        capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    async with Emulator(tokens="optional", faults=Faults(hold_token_put=True)) as emu:
        rc, out, err = await cli(capsysbinary, "--endpoint", emu.url, "--timeout", "0.3", "-v",
                                 "get", "meta-data/instance-id")
    assert rc == 0 and out.startswith(b"i-")
    assert "aioimds: IMDSv1: 1 request(s) sent without a token (the token PUT failed)" in err


def test_vv_keeps_asyncio_debug_lines_out() -> None:
    env = {**os.environ, "AWS_CONFIG_FILE": os.devnull, "PYTHONASYNCIODEBUG": "1"}
    out = subprocess.run([sys.executable, "-m", "aioimds", "-vv", "--emulator", "get",
                          "meta-data/ami-id"], capture_output=True, timeout=60, env=env,
                         check=False)
    assert out.returncode == 0
    lines = out.stderr.decode().splitlines()
    assert lines and all(line.startswith("aioimds: ") for line in lines), lines
    assert not any("selector" in line.lower() for line in lines)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def _dump_with_progress(stream: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    from aioimds import IMDSClient
    from aioimds.cli.commands import run_dump
    from aioimds.cli.parser import build_parser

    monkeypatch.setattr(cli_log, "PROGRESS_AFTER", 0.0)
    monkeypatch.setattr(cli_log, "PROGRESS_EVERY", 0.005)
    async with Emulator(latency=0.005) as emu, IMDSClient(endpoint=emu.url) as imds:
        args = build_parser().parse_args(["dump", "--concurrency", "2"])
        assert await run_dump(args, imds, io.BytesIO(), stream) == 0


async def test_progress_shows_on_a_terminal_and_is_erased(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    stream = _Terminal()
    await _dump_with_progress(stream, monkeypatch)
    text = stream.getvalue()
    assert "paths done" in text and " queued, " in text and "paths/s" in text
    assert text.endswith("\r\x1b[K")


async def test_progress_never_shows_when_stderr_is_not_a_terminal(
        monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    await _dump_with_progress(stream, monkeypatch)
    assert stream.getvalue() == ""


# -- comforts --------------------------------------------------------------------------------

async def test_global_options_after_the_command(capsysbinary: pytest.CaptureFixture[bytes]
                                                ) -> None:
    async with Emulator() as emu:
        rc, out, err = await cli(capsysbinary, "ls", "meta-data/placement", "--endpoint",
                                 emu.url, "--timeout", "2", "--attempts", "2", "-v")
    assert rc == 0 and out == b"availability-zone\navailability-zone-id\nregion\n"
    assert "(option --endpoint)" in err


def test_verbose_counts_on_both_sides() -> None:
    from aioimds.cli.parser import build_parser, verbosity

    args = build_parser().parse_args(["-v", "dump", "-v"])
    assert verbosity(args) == 2


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
@pytest.mark.parametrize(("words", "expected"), [
    (["aioimds", "d"], "dump doctor diff"),
    (["aioimds", "dump", "-f", ""], "json snapshot flat tree"),
    (["aioimds", "--endpoint", "http://127.0.0.1:1", "watch", "r"], "rebalance"),
    (["aioimds", "doctor", "--format", "j"], "json"),
    (["aioimds", "serve", "--tokens", ""], "required optional"),
    (["aioimds", "--endpoint-mode", "IPv"], "IPv4 IPv6"),
], ids=["command", "dump-format", "watch-kind", "doctor-format", "serve-tokens", "mode"])
def test_bash_completion(words: list[str], expected: str, capsys: pytest.CaptureFixture[str]
                         ) -> None:
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    quoted = " ".join(f"'{w}'" for w in words)
    probe = f'{script}\nCOMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; _aioimds; ' \
            'echo "${COMPREPLY[*]}"'
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=30,
                         check=True)
    assert out.stdout.strip() == expected


def test_zsh_completion_runs_the_bash_function_through_bashcompinit(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "zsh"]) == 0
    script = capsys.readouterr().out
    assert "bashcompinit" in script.splitlines()[1] and "complete -F _aioimds aioimds" in script




def test_main_leaves_the_callers_logging_set_up_alone(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    import logging

    logger = logging.getLogger("aioimds")
    before = (logger.level, logger.propagate, list(logger.handlers))
    assert main(["-vv", "completion", "bash"]) == 0
    assert (logger.level, logger.propagate, list(logger.handlers)) == before
