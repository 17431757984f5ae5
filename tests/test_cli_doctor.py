"""`aioimds doctor` against the emulator with the fault of each case: the problem it names, the
fix it gives, and its exit status. In-process (the emulator and doctor share the test's loop);
every probe goes to 127.0.0.1 or ::1, never to a real IMDS address."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aioimds.cli import doctor
from aioimds.cli.environment import ContainerPaths, proxy_bypassed
from aioimds.cli.parser import build_parser
from aioimds.cli.probes import LATENCY_SAMPLES, PROBE_PATH, THROTTLE_PROBE
from aioimds.emulator import Emulator, Faults, PathFault

HOP_FIX = ("aws ec2 modify-instance-metadata-options --instance-id ID "
           "--http-put-response-hop-limit 2")
TIMEOUT = "0.3"  # a held PUT costs one timeout: keep it short


@pytest.fixture(autouse=True)
def no_container(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Doctor looks for container markers in tmp_path, not in / (the test box may be one)."""
    monkeypatch.setattr(doctor, "CONTAINER_PATHS", ContainerPaths(
        markers=(str(tmp_path / ".dockerenv"),), cgroups=(str(tmp_path / "cgroup"),)))
    return tmp_path


async def run(*argv: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """Doctor with ``argv`` (global options included) and ``--format json``."""
    args = build_parser().parse_args([*argv, "doctor", "--format", "json"])
    out = io.BytesIO()
    environ = {"AWS_CONFIG_FILE": os.devnull, **(env or {})}
    rc = await doctor.run_doctor(args, out, environ=environ)
    return rc, json.loads(out.getvalue())


def problems(report: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {p["id"]: p for p in report["problems"]}


def verdicts(report: dict[str, Any]) -> dict[str, str]:
    return {p["probe"]: p["verdict"] for p in report["probes"]}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_healthy_endpoint_exits_0_with_every_probe_ok() -> None:
    async with Emulator() as emu:
        url = emu.url
        rc, report = await run("--endpoint", url)
    assert rc == 0 and report["healthy"] is True and report["problems"] == []
    assert report["verdict"].startswith(f"healthy: {url} answers IMDSv2 in ")
    assert verdicts(report) == {"TCP connect": "ok", "IPv6 endpoint": "skip", "token PUT": "ok",
                                "GET without token": "ok", "GET with token": "ok",
                                "latency": "ok", "throttle": "ok"}
    config = {row["setting"]: row for row in report["configuration"]}
    assert config["endpoint"] == {"setting": "endpoint", "value": url,
                                  "source": "option --endpoint"}
    assert config["timeout"]["source"] == "default" and report["notes"] == []


async def test_held_put_with_tokens_required_names_the_hop_limit_and_its_fix() -> None:
    async with Emulator(tokens="required", faults=Faults(hold_token_put=True)) as emu:
        rc, report = await run("--endpoint", emu.url, "--timeout", TIMEOUT)
    assert rc == 1
    (problem,) = report["problems"]
    assert problem["id"] == "hop-limit" and problem["fix"] == HOP_FIX
    assert "requires tokens" in problem["problem"] and "no request can get metadata" in (
        problem["problem"])
    assert verdicts(report)["token PUT"] == "fail"
    assert report["verdict"] == "1 problem: hop-limit"


async def test_held_put_with_tokens_optional_names_the_fallback_and_the_same_fix() -> None:
    async with Emulator(tokens="optional", faults=Faults(hold_token_put=True)) as emu:
        rc, report = await run("--endpoint", emu.url, "--timeout", TIMEOUT)
    assert rc == 1
    (problem,) = report["problems"]
    assert problem["id"] == "hop-limit" and problem["fix"] == HOP_FIX
    assert "fall back to IMDSv1" in problem["problem"]
    assert "requires tokens" not in problem["problem"]


async def test_held_put_names_the_container_it_found(no_container: Path) -> None:
    (no_container / "cgroup").write_text("12:pids:/kubepods/besteffort/pod1234/abcdef\n")
    async with Emulator(faults=Faults(hold_token_put=True)) as emu:
        _, report = await run("--endpoint", emu.url, "--timeout", TIMEOUT)
    assert report["environment"]["container"] == [f"{no_container / 'cgroup'} names kubepods"]
    assert "this process runs in a container" in problems(report)["hop-limit"]["problem"]


async def test_a_closed_port_says_use_the_emulator_or_an_endpoint() -> None:
    port = closed_port()
    rc, report = await run("--endpoint", f"http://127.0.0.1:{port}", "--timeout", TIMEOUT)
    assert rc == 1
    (problem,) = report["problems"]
    assert problem["id"] == "connection-refused"
    assert "--emulator" in problem["fix"] and "--endpoint" in problem["fix"]
    # a custom endpoint that fails says nothing about the instance's IPv6 endpoint
    assert verdicts(report) == {"TCP connect": "fail", "IPv6 endpoint": "skip"}


async def test_a_proxy_in_the_environment_is_a_problem_and_aioimds_still_answers() -> None:
    env = {"HTTP_PROXY": "http://user:hunter2@proxy.example:3128"}
    async with Emulator() as emu:
        rc, report = await run("--endpoint", emu.url, env=env)
    assert rc == 1
    (problem,) = report["problems"]
    assert problem["id"] == "proxy" and problem["fix"].startswith("export NO_PROXY=127.0.0.1,")
    assert "hunter2" not in json.dumps(report)
    assert report["environment"]["proxies"] == {"HTTP_PROXY": "http://user:***@proxy.example:3128"}
    assert verdicts(report)["GET with token"] == "ok"  # the probes never used the proxy


async def test_a_proxy_that_no_proxy_bypasses_is_no_problem() -> None:
    env = {"http_proxy": "http://proxy.example:3128", "NO_PROXY": "localhost,127.0.0.0/8"}
    async with Emulator() as emu:
        rc, report = await run("--endpoint", emu.url, env=env)
    assert rc == 0 and report["environment"]["no_proxy_covers_endpoint"] is True


async def test_imds_disabled_by_the_environment_sends_nothing_and_says_how_to_enable() -> None:
    async with Emulator() as emu:
        rc, report = await run("--endpoint", emu.url, env={"AWS_EC2_METADATA_DISABLED": "true"})
        assert emu.counters.total() == 0
    assert rc == 1
    (problem,) = report["problems"]
    assert problem["id"] == "disabled" and "AWS_EC2_METADATA_DISABLED" in problem["problem"]
    assert problem["fix"].startswith("unset AWS_EC2_METADATA_DISABLED")


async def test_ipv6_endpoint_answering_when_ipv4_fails_says_use_endpoint_mode_ipv6(
        monkeypatch: pytest.MonkeyPatch) -> None:
    if not socket.has_ipv6:
        pytest.skip("this machine has no IPv6 loopback")
    try:
        emu = Emulator(host="::1")
        await emu.start()
    except OSError as exc:
        pytest.skip(f"cannot listen on ::1: {exc}")
    try:
        monkeypatch.setattr(doctor, "IPV6_PROBE_ENDPOINT", emu.url)
        rc, report = await run("--endpoint", f"http://127.0.0.1:{closed_port()}",
                               "--timeout", TIMEOUT)
    finally:
        await emu.stop()
    assert rc == 1
    assert verdicts(report)["IPv6 endpoint"] == "ok"
    (problem,) = report["problems"]
    assert problem["id"] == "ipv6-only" and "ENDPOINT_MODE=IPv6" in problem["fix"]


async def test_token_put_refused_with_imdsv1_allowed_names_the_fallback() -> None:
    async with Emulator(tokens="optional", faults=Faults(token_put_status=403)) as emu:
        rc, report = await run("--endpoint", emu.url)
    assert rc == 1
    problem = problems(report)["token-refused"]
    assert "403" in problem["problem"] and "fall back to IMDSv1" in problem["problem"]


async def test_imdsv1_allowed_is_a_note_not_a_problem() -> None:
    async with Emulator(tokens="optional") as emu:
        rc, report = await run("--endpoint", emu.url)
    assert rc == 0
    (note,) = report["notes"]
    assert note["id"] == "imdsv1-allowed" and "--http-tokens required" in note["fix"]


async def test_a_throttled_burst_is_reported_within_a_few_requests() -> None:
    # The GET with the token and the 5 latency GETs are served; the burst meets 429s.
    faults = Faults(path_faults=[PathFault(PROBE_PATH, count=6),
                                 PathFault(PROBE_PATH, status=429, count=4)])
    async with Emulator(faults=faults) as emu:
        rc, report = await run("--endpoint", emu.url)
        sent = emu.counters.total()
    assert verdicts(report)["throttle"] == "warn"
    (note,) = report["notes"]
    assert note["id"] == "throttled" and note["problem"].startswith("4 of 10 requests")
    assert sent == 1 + 2 + LATENCY_SAMPLES + THROTTLE_PROBE  # PUT, 2 GETs, latency, burst
    assert rc == 0  # throttling is advice: the service still answers


async def test_a_bad_variable_is_reported_not_crashed_on() -> None:
    rc, report = await run("--endpoint", "http://127.0.0.1:1",
                           env={"AWS_METADATA_SERVICE_TIMEOUT": "soon"})
    assert rc == 1
    (problem,) = report["problems"]
    assert problem["id"] == "configuration" and "AWS_METADATA_SERVICE_TIMEOUT" in (
        problem["problem"])


async def test_sources_name_the_variable_and_the_profile(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("[profile dev]\nmetadata_service_num_attempts = 5\n")
    async with Emulator() as emu:
        _, report = await run(env={"AWS_EC2_METADATA_SERVICE_ENDPOINT": emu.url,
                                   "AWS_CONFIG_FILE": str(config), "AWS_PROFILE": "dev"})
    rows = {row["setting"]: row for row in report["configuration"]}
    assert rows["endpoint"]["source"] == "variable AWS_EC2_METADATA_SERVICE_ENDPOINT"
    assert rows["attempts"] == {"setting": "attempts", "value": "5",
                                "source": f"metadata_service_num_attempts in [profile dev] of "
                                          f"{config}"}
    assert rows["profile"]["value"] == "dev"


@pytest.mark.parametrize(("host", "no_proxy", "bypassed"), [
    ("169.254.169.254", "169.254.169.254", True),
    ("169.254.169.254", "localhost, 169.254.0.0/16", True),
    ("169.254.169.254", "*", True),
    ("169.254.169.254", "10.0.0.0/8,.internal", False),
    ("[fd00:ec2::254]", "fd00:ec2::254", True),
    ("imds.internal", ".internal", True),
    ("imds.internal", "", False),
], ids=["exact", "cidr", "star", "other", "ipv6", "domain", "unset"])
def test_no_proxy_is_read_as_curl_and_requests_read_it(host: str, no_proxy: str,
                                                       bypassed: bool) -> None:
    assert proxy_bypassed(host, {"no_proxy": no_proxy}) is bypassed


def test_doctor_text_report_ends_with_one_verdict_line_as_a_process() -> None:
    env = {**os.environ, "AWS_CONFIG_FILE": os.devnull}
    out = subprocess.run([sys.executable, "-m", "aioimds", "--emulator", "doctor"],
                         capture_output=True, timeout=60, env=env, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.decode().splitlines()
    assert lines[0] == "configuration" and lines[-1].startswith("verdict: healthy: ")
    assert sum(line.startswith("verdict:") for line in lines) == 1


@pytest.mark.parametrize("rps", [20.0, 5.0])
async def test_429_on_any_probe_is_a_throttled_note_and_exit_0(rps: float) -> None:
    async with Emulator(faults=Faults(throttle_rps=rps)) as emu:
        rc, report = await run("--endpoint", emu.url)
    assert report["problems"] == [] and rc == 0
    assert "throttled" in {n["id"] for n in report["notes"]}
    assert "warn" in {v for k, v in verdicts(report).items() if k.startswith("GET")} or \
        verdicts(report)["throttle"] == "warn"


async def test_a_single_429_probe_without_a_burst_429_is_still_a_note() -> None:
    # The GET without a token answers 429; everything after it is served.
    faults = Faults(path_faults=[PathFault(PROBE_PATH, status=429, count=1)])
    async with Emulator(tokens="optional", faults=faults) as emu:
        rc, report = await run("--endpoint", emu.url)
    assert rc == 0 and report["problems"] == []
    assert verdicts(report)["GET without token"] == "warn"
    note = {n["id"]: n for n in report["notes"]}["throttled"]
    assert "GET without token" in note["problem"]


async def test_token_put_5xx_is_a_server_error_not_a_proxy() -> None:
    async with Emulator(faults=Faults(token_put_status=500)) as emu:
        rc, report = await run("--endpoint", emu.url)
    assert rc == 1
    (problem,) = report["problems"]
    assert problem["id"] == "token-server-error"
    assert "server error to the token PUT" in problem["problem"]
    assert "retry later" in problem["fix"]
    assert "proxy" not in problem["problem"] + problem["fix"]
    assert "NO_PROXY" not in problem["fix"]


@pytest.mark.parametrize("status", [404, 405])
async def test_token_put_404_405_says_imdsv2_unsupported(status: int) -> None:
    async with Emulator(tokens="optional", faults=Faults(token_put_status=status)) as emu:
        rc, report = await run("--endpoint", emu.url)
    assert rc == 1
    problem = problems(report)["imdsv2-unsupported"]
    assert f"answered {status}" in problem["problem"] and "IMDSv2" in problem["problem"]


async def test_token_put_403_names_no_proxy_for_the_endpoint_only_when_a_proxy_is_set() -> None:
    async with Emulator(faults=Faults(token_put_status=403)) as emu:
        _, plain = await run("--endpoint", emu.url)
        _, proxied = await run("--endpoint", emu.url,
                               env={"HTTP_PROXY": "http://127.0.0.1:3128"})
    fix = problems(plain)["token-refused"]["fix"]
    assert "X-Forwarded-For" in fix and "NO_PROXY" not in fix
    fix = problems(proxied)["token-refused"]["fix"]
    assert "NO_PROXY=127.0.0.1" in fix and "169.254.169.254" not in fix


async def test_a_dropped_token_put_is_retried_not_called_a_hop_limit() -> None:
    # The first PUT's connection is closed without an answer; the retry is answered.
    async with Emulator(faults=Faults(drop_rate=0.3), seed=1) as emu:
        _, report = await run("--endpoint", emu.url, "--timeout", TIMEOUT)
        dropped_puts = emu.counters.token_puts
    assert "hop-limit" not in problems(report)
    assert verdicts(report)["token PUT"] == "ok"
    assert dropped_puts == 2  # the dropped one and its retry


async def test_server_errors_on_gets_are_a_problem() -> None:
    # The GET with the token and 3 of the 5 latency GETs answer 500.
    faults = Faults(path_faults=[PathFault(PROBE_PATH, count=1),
                                 PathFault(PROBE_PATH, status=500, count=1),
                                 PathFault(PROBE_PATH, count=1),
                                 PathFault(PROBE_PATH, status=500, count=3)])
    async with Emulator(faults=faults) as emu:
        rc, report = await run("--endpoint", emu.url)
    assert rc == 1
    problem = problems(report)["server-errors"]
    assert problem["problem"].startswith("4 of ")
    assert verdicts(report)["latency"] == "warn"


async def test_emulator_says_the_config_file_is_not_read() -> None:
    rc, report = await run("--emulator", env={"AWS_PROFILE": "lab"})
    config = {row["setting"]: row for row in report["configuration"]}
    assert rc == 0
    assert config["config file"] == {"setting": "config file", "value": "not read",
                                     "source": "--emulator"}
    assert config["profile"]["value"] == "not read"
