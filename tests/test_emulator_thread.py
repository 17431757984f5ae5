"""Emulator.in_thread(): the emulator on its own loop in a background thread, so synchronous
code can call it; editing methods from the caller's thread run on the emulator's loop."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request

import pytest
from emulator_http import REGION, TOKEN_H, TTL_H

from aioimds import IMDSClient
from aioimds.emulator import Emulator

DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never an env proxy


def fetch(url: str, method: str = "GET", headers: dict[str, str] | None = None
          ) -> tuple[int, bytes]:
    """A blocking HTTP call, as synchronous client code makes it."""
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with DIRECT.open(request, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def emulator_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "aioimds-emulator"]


def test_a_blocking_client_is_answered_and_the_thread_ends_after() -> None:
    with Emulator().in_thread() as emu:
        status, token = fetch(emu.url + "/latest/api/token", "PUT", {TTL_H: "60"})
        assert status == 200
        assert fetch(emu.url + REGION, headers={TOKEN_H: token.decode()}) == (
            200, b"ap-northeast-1")
        assert fetch(emu.url + REGION)[0] == 401
        assert [(r.method, r.status) for r in emu.requests] == [
            ("PUT", 200), ("GET", 200), ("GET", 401)]
        assert len(emulator_threads()) == 1
    assert emulator_threads() == []
    with pytest.raises(RuntimeError, match="not running"):
        emu.url  # noqa: B018


def test_edits_from_the_callers_thread_apply_before_they_return() -> None:
    with Emulator(tokens="optional").in_thread() as emu:
        emu.set_leaf("/latest/meta-data/tags/instance/Owner", "me")
        assert b"Owner" in fetch(emu.url + "/latest/meta-data/tags/instance/")[1]
        emu.remove(REGION)
        assert fetch(emu.url + REGION)[0] == 404
        emu.schedule_spot_action(0, "stop")  # needs the emulator's loop: runs there
        status, body = fetch(emu.url + "/latest/meta-data/spot/instance-action")
        assert (status, json.loads(body)["action"]) == (200, "stop")
        emu.faults.token_put_status = 403
        assert fetch(emu.url + "/latest/api/token", "PUT", {TTL_H: "60"})[0] == 403
        with pytest.raises(ValueError, match="must start with /"):
            emu.set_leaf("latest/meta-data/x", "y")  # raised in the caller's thread


async def test_an_async_test_can_use_both_a_blocking_call_and_aioimds() -> None:
    with Emulator(tokens="optional").in_thread() as emu:
        assert fetch(emu.url + REGION) == (200, b"ap-northeast-1")  # blocks this loop: fine
        async with IMDSClient(endpoint=emu.url) as imds:
            assert await imds.get("meta-data/placement/region") == "ap-northeast-1"
        assert threading.current_thread() is threading.main_thread()
        assert asyncio.get_running_loop() is not None


def test_in_thread_refuses_a_running_emulator_and_a_taken_port() -> None:
    with Emulator().in_thread() as emu:
        with pytest.raises(RuntimeError, match="already running"), emu.in_thread():
            pass
        with pytest.raises(OSError), Emulator(port=emu.port).in_thread():
            pass
    assert emulator_threads() == []


def test_the_emulator_can_run_in_a_thread_again_after_stopping() -> None:
    emu = Emulator(tokens="optional")
    for _ in range(2):
        with emu.in_thread():
            assert fetch(emu.url + REGION)[0] == 200


def test_an_error_in_the_block_still_stops_the_emulator() -> None:
    with pytest.raises(KeyError), Emulator().in_thread() as emu:
        url = emu.url
        raise KeyError("boom")
    with pytest.raises(urllib.error.URLError):
        fetch(url + REGION)  # nothing listens any more
    assert emulator_threads() == []
