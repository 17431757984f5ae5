"""``python -m bench.emuproc [serve options] [--fail-once PATH:STATUS]``: the emulator in a
process of its own that, on SIGTERM, prints what it answered.

It takes every ``aioimds serve`` option (the same parser and :func:`emulator_from_args`), plus
``--fail-once`` (a :class:`~aioimds.emulator.PathFault` answering one request of PATH with
STATUS, which ``serve`` has no option for). It prints its URL, serves until SIGTERM, then prints
one JSON line: ``{"statuses": {"GET 200": n, ...}, "token_puts": n}``, status 0 meaning a
connection closed without an answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from aioimds.emulator import PathFault
from aioimds.emulator.serve import add_serve_arguments, emulator_from_args


def _fail_once(text: str) -> PathFault:
    path, _, status = text.rpartition(":")
    return PathFault(path, status=int(status))


async def _serve(args: argparse.Namespace) -> None:
    emulator = emulator_from_args(args)
    emulator.faults.path_faults = list(args.fail_once)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with emulator:
        print(emulator.url, flush=True)
        await stop.wait()
    counts = {f"{m} {s}": n for (m, s), n in sorted(emulator.counters.requests.items())}
    print(json.dumps({"statuses": counts, "token_puts": emulator.counters.token_puts}),
          flush=True)


def main() -> None:
    """Parse the options, serve, report."""
    ap = argparse.ArgumentParser(prog="python -m bench.emuproc")
    add_serve_arguments(ap)
    ap.add_argument("--fail-once", type=_fail_once, action="append", default=[],
                    metavar="PATH:STATUS")
    asyncio.run(_serve(ap.parse_args(sys.argv[1:])))


if __name__ == "__main__":
    main()
