"""Every program in examples/ runs and prints what it promises."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import aiohttp
import pytest

from aioimds import IMDSClient, IMDSConfig
from aioimds.emulator import Emulator

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
INSTANCE_ID = "i-0a1b2c3d4e5f60718"
"""The instance id of the emulator's default tree."""
ROLE_DOCUMENT = "/latest/meta-data/iam/security-credentials/aioimds-demo-role"
WARNING_SIGNS = ("Unclosed", "was destroyed but it is pending", "Traceback", "Warning")
"""What stderr must not contain: aiohttp's unclosed-session report, asyncio's pending-task
report, an uncaught exception, any warning (the examples run with -W error)."""
HAS_AIOBOTOCORE = importlib.util.find_spec("aiobotocore") is not None


def run(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_region_example_against_the_embedded_emulator() -> None:
    out = run("region.py")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "ap-northeast-1\n"
    assert "versions: 1.0, " in out.stderr and out.stderr.split("\n")[0].endswith(", latest")
    assert "placement/: availability-zone, availability-zone-id, region" in out.stderr


def example_environment(url: str) -> dict[str, str]:
    """The environment of an example run against the emulator at ``url``, and nothing else:
    no AWS credentials, profiles or config files of the machine running the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, "AWS_EC2_METADATA_SERVICE_ENDPOINT": url, "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


async def start(name: str, url: str, *args: str) -> asyncio.subprocess.Process:
    """``python -W error examples/NAME ARGS`` against the emulator at ``url``."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-W", "error", str(EXAMPLES / name), *args,
        env=example_environment(url), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until_listening(proc: asyncio.subprocess.Process, port: int, within: float) -> None:
    """Return once 127.0.0.1:``port`` accepts a connection. The port, not the banner: a child's
    stdout into a pipe is block-buffered, so its banner arrives only when it exits."""
    deadline = time.monotonic() + within
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if proc.returncode is not None:
                raise AssertionError(f"the example exited with {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listens on port {port} after {within} s") from None
            await asyncio.sleep(0.05)
        else:
            writer.close()
            await writer.wait_closed()
            return


async def test_aiohttp_app_answers_from_the_cache_and_shuts_down_cleanly(
    imds_emulator: Emulator,
) -> None:
    port = free_port()
    proc = await start("aiohttp_app.py", imds_emulator.url, "--port", str(port))
    try:
        await until_listening(proc, port, within=20)
        async with aiohttp.ClientSession() as http:

            async def ask() -> object:
                async with http.get(f"http://127.0.0.1:{port}/") as r:
                    assert r.status == 200
                    return await r.json()

            answers = await asyncio.gather(*(ask() for _ in range(50)))
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert answers == [{"region": "ap-northeast-1", "instance_id": INSTANCE_ID}] * 50
    assert f"http://127.0.0.1:{port}" in out.decode()  # web.run_app's banner
    assert proc.returncode == 0, err.decode()
    assert not any(sign in err.decode() for sign in WARNING_SIGNS), err.decode()
    # 50 requests to the app, and IMDS was asked once for each value.
    trace = [(t.method, t.path) for t in imds_emulator.counters.trace]
    assert trace[0] == ("PUT", "/latest/api/token")
    assert sorted(trace[1:]) == [("GET", "/latest/meta-data/instance-id"),
                                 ("GET", "/latest/meta-data/placement/region")]


async def test_spot_drain_exits_promptly_after_the_notice(imds_emulator: Emulator) -> None:
    interval, ahead = 0.2, 1.5
    imds_emulator.schedule_spot_action(ahead, "terminate")
    scheduled = time.monotonic()
    proc = await start("spot_drain.py", imds_emulator.url, "--interval", str(interval))
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    elapsed = time.monotonic() - scheduled
    assert proc.returncode == 0, err.decode()
    assert ahead <= elapsed <= ahead + interval + 1.0, elapsed
    lines = out.decode().splitlines()
    assert lines[0].startswith("spot interruption notice: terminate at ")
    assert lines[1].startswith("drained 3 workers after ") and lines[1].endswith("; exiting")
    assert err.decode().count("checkpointed after") == 3
    assert not any(sign in err.decode() for sign in WARNING_SIGNS), err.decode()


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), EXAMPLES / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not HAS_AIOBOTOCORE, reason="aiobotocore is not installed (not a dependency "
                    "of aioimds; it comes with the 'conformance' extra: pip install -e "
                    "'.[conformance]')")
async def test_s3_example_hands_the_emulator_credentials_to_aiobotocore(
    imds_environment: Emulator, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        if name != "AWS_EC2_METADATA_SERVICE_ENDPOINT":  # botocore's own IMDS use: the emulator
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    example = load_example("s3_with_instance_credentials.py")
    served = json.loads(imds_environment.snapshot[ROLE_DOCUMENT].body)
    async with IMDSClient(IMDSConfig(endpoint=imds_environment.url)) as imds:
        session = example.session_with_instance_credentials(imds)
        async with session.create_client("s3", region_name="ap-northeast-1"):
            resolved = await session.get_credentials()
            frozen = await resolved.get_frozen_credentials()
    assert resolved.method == "aioimds"
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (
        served["AccessKeyId"], served["SecretAccessKey"], served["Token"])
    assert {t.path for t in imds_environment.counters.trace} <= {
        "/latest/api/token", "/latest/meta-data/iam/security-credentials/",
        "/latest/meta-data/iam/security-credentials-extended/aioimds-demo-role", ROLE_DOCUMENT}


def test_aiohttp_app_with_a_dead_endpoint_fails_with_one_line_and_exit_1() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    out = run("aiohttp_app.py", "--endpoint", f"http://127.0.0.1:{port}", "--port", "0")
    assert out.returncode == 1
    (line,) = out.stderr.splitlines()
    assert line.startswith("aiohttp_app.py: error: cannot read the region and instance id")
    assert f"http://127.0.0.1:{port}" in line and "--emulator" not in line
