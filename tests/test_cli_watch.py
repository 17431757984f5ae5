"""`aioimds watch` as a real process against an emulator on the test's loop: a notice scheduled
by the emulator is printed once, soon enough, flushed; --exec, --once and SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aioimds import SpotInstanceAction
from aioimds.cli.watch import notice_json
from aioimds.emulator import Emulator, Faults, PathFault

SPOT = "/latest/meta-data/spot/instance-action"
INTERVAL = 0.5


def polls(emu: Emulator) -> int:
    return sum(1 for e in emu.counters.trace if e.path == SPOT and e.method == "GET")


async def until(condition: object, timeout: float = 30.0) -> None:
    """Wait until ``condition()`` is true (generous: only a hang fails)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():  # type: ignore[operator]
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def watch(url: str, *args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    env = {**os.environ, "AWS_CONFIG_FILE": os.devnull}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aioimds", "--endpoint", url, "watch", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_spot_notice_two_seconds_ahead_is_printed_once_within_interval_plus_1s(
        ) -> None:
    async with Emulator() as emu, watch(emu.url, "spot", "--interval", str(INTERVAL)) as proc:
        assert proc.stdout is not None
        await until(lambda: polls(emu) >= 1)  # the process is up and polling
        loop = asyncio.get_running_loop()
        emu.schedule_spot_action(2.0, "terminate")
        due = loop.time() + 2.0
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        late = loop.time() - due
        seen = polls(emu)
        await until(lambda: polls(emu) >= seen + 3)  # three more polls: no second line
        proc.send_signal(signal.SIGTERM)
        rest, err = await proc.communicate()
    assert late <= INTERVAL + 1.0, late
    notice = json.loads(line)
    assert notice["notice"] == "spot" and notice["action"] == "terminate"
    assert notice["time"].endswith("Z")
    assert rest == b""  # exactly once
    assert proc.returncode == 0 and b"Traceback" not in err


async def test_exec_gets_the_notice_in_its_environment_and_on_stdin_and_once_exits_0(
        tmp_path: Path) -> None:
    script = tmp_path / "hook.py"
    seen = tmp_path / "seen.json"
    script.write_text("import json, os, sys\n"
                      f"json.dump({{'env': os.environ['AIOIMDS_NOTICE'], 'stdin': sys.stdin.read(),"
                      f" 'kind': os.environ['AIOIMDS_WATCH']}}, open({str(seen)!r}, 'w'))\n")
    cmd = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"
    async with Emulator() as emu:
        emu.schedule_rebalance(0)
        async with watch(emu.url, "rebalance", "--interval", str(INTERVAL), "--exec", cmd,
                         "--once") as proc:
            out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err
    line = out.decode().strip()
    got = json.loads(seen.read_text())
    assert got == {"env": line, "stdin": line + "\n", "kind": "rebalance"}
    assert json.loads(line)["notice"] == "rebalance"


async def test_watch_rides_through_429_5xx_and_revoked_tokens() -> None:
    faults = Faults(path_faults=[PathFault(SPOT, status=429, count=4),
                                 PathFault(SPOT, status=503, count=4)])
    async with Emulator(faults=faults) as emu:
        async with watch(emu.url, "spot", "--interval", "0.1", "--once") as proc:
            await until(lambda: polls(emu) >= 2)
            emu.revoke_tokens()  # the next poll meets 401 and must PUT again
            await until(lambda: faults.path_faults[1].hits == 4)
            emu.schedule_spot_action(0, "stop")
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        statuses = [e.status for e in emu.counters.trace if e.path == SPOT]
        puts = emu.counters.token_puts
    assert proc.returncode == 0, err
    assert json.loads(out)["action"] == "stop"
    assert statuses.count(429) == 4 and statuses.count(503) == 4 and statuses[-1] == 200
    assert 401 in statuses and puts >= 2


async def test_watch_rides_through_dropped_connections() -> None:
    async with Emulator(faults=Faults(drop_rate=1.0)) as emu:
        async with watch(emu.url, "spot", "--interval", "0.1", "--attempts", "1",
                         "--once") as proc:
            # every attempt is dropped: the token PUT and then polls keep failing
            await until(lambda: emu.counters.requests[("PUT", 0)] + emu.counters.requests[
                ("GET", 0)] >= 3)
            emu.faults.drop_rate = 0.0
            emu.schedule_spot_action(0, "hibernate")
            out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err
    assert json.loads(out)["action"] == "hibernate"
    assert b"warning: watching meta-data/spot/instance-action" in err


async def test_watch_exits_1_when_imds_is_disabled() -> None:
    env = {**os.environ, "AWS_CONFIG_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aioimds", "--endpoint", "http://127.0.0.1:1", "watch", "spot",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1 and out == b"" and b"AWS_EC2_METADATA_DISABLED" in err


def test_notice_json_is_one_line_with_utc_times() -> None:
    from datetime import datetime, timezone

    spot = SpotInstanceAction("terminate", datetime(2026, 12, 1, 10, 2, tzinfo=timezone.utc))
    assert notice_json("spot", spot) == (
        '{"notice": "spot", "action": "terminate", "time": "2026-12-01T10:02:00Z"}')
    assert notice_json("lifecycle", "InService") == (
        '{"notice": "lifecycle", "state": "InService"}')
