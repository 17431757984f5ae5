"""Run background work on a spot instance and drain it when an interruption notice arrives.

    python examples/spot_drain.py                                  # endpoint from the environment
    python examples/spot_drain.py --endpoint http://127.0.0.1:1338 --interval 5

Workers process jobs until the watcher sees ``meta-data/spot/instance-action`` (polled every
5 s by default, as AWS recommends); then every worker is cancelled, finishes or checkpoints
its current job, and the program reports what it drained and exits 0, well inside the
two-minute warning. Try it with the emulator::

    aioimds serve --port 1338 --spot-action-in 10 &
    python examples/spot_drain.py --endpoint http://127.0.0.1:1338
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from aioimds import IMDSClient, watch_spot_interruption
from aioimds.typed import SPOT_INTERVAL

WORKERS = 3
JOB_SECONDS = 0.05
"""How long one made-up job takes."""


async def worker(number: int, done: list[int]) -> None:
    """Process jobs forever; on cancellation, checkpoint and stop."""
    try:
        while True:
            await asyncio.sleep(JOB_SECONDS)
            done[number] += 1
    except asyncio.CancelledError:
        print(f"worker {number}: checkpointed after {done[number]} jobs", file=sys.stderr)
        raise


async def run(imds: IMDSClient, interval: float) -> None:
    """Start the workers, wait for the spot notice, then cancel and await every worker."""
    done = [0] * WORKERS
    workers = [asyncio.create_task(worker(n, done)) for n in range(WORKERS)]
    try:
        async for notice in watch_spot_interruption(imds, interval=interval):
            print(f"spot interruption notice: {notice.action} at {notice.time:%H:%M:%S} UTC",
                  flush=True)
            break
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    print(f"drained {WORKERS} workers after {sum(done)} jobs; exiting", flush=True)


async def main(endpoint: str | None, interval: float) -> None:
    async with IMDSClient(endpoint=endpoint) if endpoint else IMDSClient() as imds:
        await run(imds, interval)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoint", help="IMDS endpoint (default: from the environment)")
    parser.add_argument("--interval", type=float, default=SPOT_INTERVAL,
                        help=f"seconds between polls (default: {SPOT_INTERVAL:g})")
    args = parser.parse_args()
    asyncio.run(main(args.endpoint, args.interval))
