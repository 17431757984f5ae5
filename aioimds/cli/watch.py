"""``aioimds watch spot|rebalance|maintenance|lifecycle``: one JSON line per new notice.

Each notice is printed as one JSON object on one line and flushed at once, so a shell pipeline
(``aioimds watch spot | while read -r n; do ...; done``) sees it as soon as it appears:

    {"notice": "spot", "action": "terminate", "time": "2026-12-01T10:02:00Z"}
    {"notice": "rebalance", "notice_time": "2026-12-01T10:00:00Z"}
    {"notice": "maintenance", "code": "system-reboot", "event_id": "instance-event-0d59...", ...}
    {"notice": "lifecycle", "state": "InService"}

It polls with the library's watchers (:mod:`aioimds.typed.watch`), so it rides through 401, 429,
5xx and connection errors as they do (a warning on stderr for the first failed poll in a row)
and ends only when IMDS is disabled (exit 1). ``--exec CMD`` runs ``sh -c CMD`` for each
notice, the JSON line in ``AIOIMDS_NOTICE`` and on stdin, and waits for it before the next poll
(a CMD that fails is logged; watching goes on). ``--once`` exits 0 after the first notice.
SIGTERM (and SIGINT) stop it cleanly: a running CMD gets SIGTERM too, and the exit status is 0
(130 for SIGINT).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import signal
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from typing import Any, BinaryIO

from ..client import IMDSClient
from ..typed import (
    LIFECYCLE_INTERVAL,
    MAINTENANCE_INTERVAL,
    REBALANCE_INTERVAL,
    SPOT_INTERVAL,
    watch_maintenance_events,
    watch_rebalance_recommendation,
    watch_spot_interruption,
    watch_target_lifecycle_state,
)
from .log import log

__all__ = ["notice_json", "run_watch"]

_WATCHERS: dict[str, tuple[Callable[..., Any], float]] = {
    "spot": (watch_spot_interruption, SPOT_INTERVAL),
    "rebalance": (watch_rebalance_recommendation, REBALANCE_INTERVAL),
    "maintenance": (watch_maintenance_events, MAINTENANCE_INTERVAL),
    "lifecycle": (watch_target_lifecycle_state, LIFECYCLE_INTERVAL),
}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def notice_json(kind: str, notice: Any) -> str:
    """One notice (a watcher's item) as one line of JSON, ``"notice": kind`` first."""
    fields: dict[str, Any] = {"notice": kind}
    if dataclasses.is_dataclass(notice) and not isinstance(notice, type):
        fields.update({k: _plain(v) for k, v in dataclasses.asdict(notice).items()})
    else:
        fields["state"] = notice
    return json.dumps(fields, ensure_ascii=False)


async def _exec(cmd: str, kind: str, line: str) -> None:
    env = {**os.environ, "AIOIMDS_NOTICE": line, "AIOIMDS_WATCH": kind}
    proc = await asyncio.create_subprocess_shell(cmd, stdin=asyncio.subprocess.PIPE, env=env)
    try:
        await proc.communicate((line + "\n").encode())
    except asyncio.CancelledError:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()
        raise
    if proc.returncode:
        log.warning("--exec command exited with status %d; watching goes on", proc.returncode)


@contextlib.asynccontextmanager
async def _stop_on_sigterm() -> AsyncIterator[list[bool]]:
    """Cancel the current task on SIGTERM; the yielded flag says whether that happened."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    stopped = [False]

    def stop() -> None:
        stopped[0] = True
        if task is not None:
            task.cancel()

    try:
        loop.add_signal_handler(signal.SIGTERM, stop)
    except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
        yield stopped
        return
    try:
        yield stopped
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def run_watch(args: argparse.Namespace, imds: IMDSClient, stdout: BinaryIO) -> int:
    """``aioimds watch KIND``: print notices until SIGTERM, or the first with ``--once``."""
    factory, default = _WATCHERS[args.kind]
    interval = args.interval if args.interval is not None else default
    log.info("watching %s every %g s", args.kind, interval)
    async with _stop_on_sigterm() as stopped:
        try:
            async for notice in factory(imds, interval=interval):
                line = notice_json(args.kind, notice)
                stdout.write(line.encode() + b"\n")
                stdout.flush()
                if args.exec_cmd:
                    await _exec(args.exec_cmd, args.kind, line)
                if args.once:
                    return 0
        except asyncio.CancelledError:
            if not stopped[0]:
                raise
            log.info("stopped by SIGTERM")
            return 0
    return 0
