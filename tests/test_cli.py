"""The aioimds command, run as a user runs it: a real process against `aioimds serve`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import fixture_params

from aioimds import IMDSConfig, Snapshot
from aioimds.emulator import default_snapshot
from aioimds.render import REDACTED

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def cli(*args: str, env: dict[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    full_env = {**os.environ, "AWS_CONFIG_FILE": os.devnull, **(env or {})}
    return subprocess.run([sys.executable, "-m", "aioimds", *args], capture_output=True,
                          timeout=timeout, env=full_env, check=False)


@contextlib.contextmanager
def serve(*args: str) -> Iterator[str]:
    """`aioimds serve ARGS --port 0` in a child process; yields the URL it prints first."""
    with subprocess.Popen([sys.executable, "-m", "aioimds", "serve", "--port", "0", *args],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().decode().strip()
            assert url.startswith("http://127.0.0.1:"), url
            yield url
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_emulator_dump_prints_the_default_tree_as_json() -> None:
    out = cli("--emulator", "dump")
    assert out.returncode == 0, out.stderr
    tree = json.loads(out.stdout)
    assert tree["meta-data"]["placement"]["region"] == "ap-northeast-1"
    creds = tree["meta-data"]["iam"]["security-credentials"]
    (doc,) = creds.values()
    assert doc["SecretAccessKey"] == REDACTED and doc["Token"] == REDACTED


@pytest.mark.parametrize("path", fixture_params())
def test_serve_then_dump_snapshot_equals_the_fixture(path: Path, tmp_path: Path) -> None:
    with serve("--snapshot", str(path)) as url:
        out = cli("--endpoint", url, "dump", "--format", "snapshot", "--include-secrets")
    assert out.returncode == 0, out.stderr
    assert Snapshot.loads(out.stdout) == Snapshot.load(path)


def test_get_ls_flat_and_output_file(tmp_path: Path) -> None:
    with serve() as url:
        get = cli("--endpoint", url, "get", "meta-data/placement/region")
        ls = cli("--endpoint", url, "ls", "meta-data/placement/")
        flat = cli("--endpoint", url, "dump", "--format", "flat")
        to_file = cli("--endpoint", url, "dump", "--format", "snapshot", "--output",
                      str(tmp_path / "s.json"), "--include-secrets")
        example = subprocess.run([sys.executable, str(EXAMPLES / "region.py"), url],
                                 capture_output=True, text=True, timeout=60, check=False)
    assert (get.returncode, get.stdout) == (0, b"ap-northeast-1")
    assert ls.stdout == b"availability-zone\navailability-zone-id\nregion\n"
    assert b"meta-data/placement/region: ap-northeast-1\n" in flat.stdout
    assert to_file.stdout == b"" and Snapshot.load(tmp_path / "s.json") == (
        default_snapshot().subtree())
    assert example.stdout == "ap-northeast-1\n"


def test_not_found_exits_3() -> None:
    with serve() as url:
        out = cli("--endpoint", url, "get", "meta-data/spot/instance-action")
    assert out.returncode == 3
    assert b"/latest/meta-data/spot/instance-action" in out.stderr and b"404" in out.stderr
    assert b"Traceback" not in out.stderr


def test_unreachable_exits_1_without_traceback() -> None:
    out = cli("--endpoint", f"http://127.0.0.1:{closed_port()}", "--attempts", "1",
              "get", "meta-data/ami-id")
    assert out.returncode == 1
    assert b"cannot reach IMDS" in out.stderr and b"Traceback" not in out.stderr


def test_incomplete_dump_exits_1_with_one_line_per_failed_path(tmp_path: Path) -> None:
    snap = default_snapshot().to_json()
    snap["responses"]["/latest/meta-data/ami-id"] = {"status": 403}
    snap["responses"]["/latest/meta-data/hostname"] = {"status": 500}
    f = tmp_path / "broken.json"
    f.write_text(json.dumps(snap))
    with serve("--snapshot", str(f)) as url:
        out = cli("--endpoint", url, "--attempts", "1", "dump", "--concurrency", "4")
    assert out.returncode == 1
    assert out.stdout == b""
    lines = out.stderr.decode().splitlines()
    assert any(line.startswith("aioimds: /latest/meta-data/ami-id: ") and "403" in line
               for line in lines)
    assert any(line.startswith("aioimds: /latest/meta-data/hostname: ") for line in lines)
    assert "Traceback" not in out.stderr.decode()


@pytest.mark.parametrize(
    "args",
    [["dump", "--format", "xml"], ["nope"], ["--timeout", "x", "get", "a"], [],
     ["--emulator", "get", "meta-data/../../etc/passwd"]],
    ids=["bad-format", "bad-command", "bad-timeout", "no-command", "bad-path"],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    assert cli(*args).returncode == 2


def test_bad_environment_value_exits_2_naming_it() -> None:
    out = cli("--emulator", "get", "meta-data/ami-id",
              env={"AWS_METADATA_SERVICE_NUM_ATTEMPTS": "0"})
    assert out.returncode == 2
    assert b"AWS_METADATA_SERVICE_NUM_ATTEMPTS" in out.stderr


def test_version() -> None:
    out = cli("--version")
    assert out.returncode == 0 and out.stdout.startswith(b"aioimds ")


def test_endpoint_from_the_environment_variable() -> None:
    with serve() as url:
        out = cli("get", "meta-data/instance-id",
                  env={"AWS_EC2_METADATA_SERVICE_ENDPOINT": url})
    assert out.returncode == 0, out.stderr
    assert out.stdout == default_snapshot()["/latest/meta-data/instance-id"].body


def test_endpoint_from_a_profile_in_the_config_file(tmp_path: Path) -> None:
    with serve() as url:
        config = tmp_path / "config"
        config.write_text(f"[default]\nec2_metadata_service_endpoint = http://127.0.0.1:1\n"
                          f"[profile emulated]\nec2_metadata_service_endpoint = {url}\n")
        out = cli("get", "meta-data/instance-id",
                  env={"AWS_CONFIG_FILE": str(config), "AWS_PROFILE": "emulated"})
    assert out.returncode == 0, out.stderr
    assert out.stdout == default_snapshot()["/latest/meta-data/instance-id"].body


def test_option_wins_over_the_environment() -> None:
    with serve() as url:
        out = cli("--endpoint", url, "get", "meta-data/placement/region",
                  env={"AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://127.0.0.1:{closed_port()}"})
    assert (out.returncode, out.stdout) == (0, b"ap-northeast-1")


@pytest.mark.parametrize(("tokens", "status"), [("required", 1), ("optional", 0)])
def test_held_token_put_resolves_within_the_request_deadline(tokens: str, status: int) -> None:
    """The held PUT is retried within the budget (2 attempts), then decided: IMDSv1, or the
    hop-limit error when a token-less GET is answered 401."""
    timeout, attempts = 0.5, 2
    start = time.monotonic()
    cli("--version")
    startup = time.monotonic() - start
    with serve("--hold-token-put", "--tokens", tokens) as url:
        start = time.monotonic()
        out = cli("--endpoint", url, "--timeout", str(timeout), "--attempts", str(attempts),
                  "get", "meta-data/instance-id")
        elapsed = time.monotonic() - start
    assert out.returncode == status, out.stderr
    assert elapsed < IMDSConfig(timeout=timeout).deadline_for(attempts) + startup
    if status:
        assert b"hop limit" in out.stderr and b"Traceback" not in out.stderr
    else:
        assert out.stdout.startswith(b"i-")


def test_serve_signs_the_identity_document_and_the_signature_verifies(tmp_path: Path) -> None:
    pytest.importorskip("cryptography", reason="signing needs cryptography (the extras 'test' "
                        "and 'verify' install it)")
    from aioimds import verify_identity_document

    cert = tmp_path / "imds.pem"
    with serve("--sign-identity", str(cert)) as url:
        doc = cli("--endpoint", url, "get", "dynamic/instance-identity/document")
        sig = cli("--endpoint", url, "get", "dynamic/instance-identity/signature")
    assert doc.returncode == 0 and sig.returncode == 0
    verify_identity_document(doc.stdout, sig.stdout.decode(), cert.read_text())


@pytest.mark.parametrize(
    "args", [["--emulator", "--endpoint", "http://127.0.0.1:1", "ls"], ["--emulator", "serve"]],
    ids=["with-endpoint", "with-serve"],
)
def test_emulator_goes_with_neither_endpoint_nor_serve(args: list[str]) -> None:
    out = cli(*args)
    assert out.returncode == 2 and b"--emulator" in out.stderr


def test_emulator_ignores_imds_disabled() -> None:
    out = cli("--emulator", "get", "meta-data/placement/region",
              env={"AWS_EC2_METADATA_DISABLED": "true"})
    assert (out.returncode, out.stdout) == (0, b"ap-northeast-1")


def test_malformed_endpoint_exits_2_without_traceback() -> None:
    out = cli("--endpoint", "http://127.0.0.1:99999", "get", "meta-data/ami-id")
    assert out.returncode == 2 and b"endpoint" in out.stderr and b"99999" in out.stderr
    assert b"Traceback" not in out.stderr
