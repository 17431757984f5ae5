"""A FastAPI service whose background worker drains its queue when a spot interruption arrives.

    pip install 'aioimds[examples]' uvicorn
    python examples/fastapi_spot_drain.py --endpoint http://127.0.0.1:1338 --port 8080
    curl -X POST http://127.0.0.1:8080/jobs      ->  202 {"job": 1}
    curl http://127.0.0.1:8080/health            ->  200 {"status": "serving", ...}

The lifespan opens one IMDSClient and starts two background tasks: the worker, which runs the
queued jobs one after another, and the watcher, which polls ``meta-data/spot/instance-action``
(every 5 s by default, as AWS recommends). When a notice arrives, about two minutes before the
instance is stopped or terminated, the service drains: ``POST /jobs`` answers 503 with
``Retry-After`` (the load balancer or the caller sends new work elsewhere), ``GET /health``
answers 503 so the instance leaves the target group, and the worker finishes the jobs already
queued, then stops. At shutdown the lifespan waits for the worker to finish draining. Try it
with the emulator::

    aioimds serve --port 1338 --spot-action-in 30 &
    python examples/fastapi_spot_drain.py --endpoint http://127.0.0.1:1338
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response, status

from aioimds import IMDSClient, SpotInstanceAction
from aioimds.typed import SPOT_INTERVAL, watch_spot_interruption

JOB_SECONDS = 0.05
"""How long one made-up job takes."""
RETRY_AFTER = 120
"""Seconds a refused caller is told to wait: by then this instance is gone."""


@dataclass
class Jobs:
    """The queue the worker drains, and what happened to it."""

    queue: asyncio.Queue[int | None] = field(default_factory=asyncio.Queue)
    submitted: int = 0
    done: int = 0
    draining: bool = False
    notice: SpotInstanceAction | None = None
    drained: asyncio.Event = field(default_factory=asyncio.Event)

    def drain(self, notice: SpotInstanceAction | None = None) -> None:
        """Take no more jobs; the worker stops after those already queued."""
        if not self.draining:
            self.draining, self.notice = True, notice
            self.queue.put_nowait(None)  # after every queued job: the queue is FIFO

    async def work(self) -> None:
        """Run the queued jobs in order until the drain's end mark."""
        while await self.queue.get() is not None:
            await asyncio.sleep(JOB_SECONDS)  # the job itself
            self.done += 1
        self.drained.set()


async def watch(imds: IMDSClient, jobs: Jobs, interval: float) -> None:
    """Wait for the spot interruption notice and start the drain."""
    async for notice in watch_spot_interruption(imds, interval=interval):
        jobs.drain(notice)
        return


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def lifespan_for(endpoint: str | None = None, interval: float = SPOT_INTERVAL) -> Lifespan:
    """One client, the worker and the watcher for the app's life; shutdown (with or without a
    notice) waits for the worker to finish what was queued."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with IMDSClient(endpoint=endpoint) if endpoint else IMDSClient() as imds:
            jobs = Jobs()
            app.state.imds, app.state.jobs = imds, jobs
            worker = asyncio.create_task(jobs.work())
            watcher = asyncio.create_task(watch(imds, jobs, interval))
            try:
                yield
            finally:
                watcher.cancel()
                jobs.drain()
                await asyncio.gather(watcher, worker, return_exceptions=True)

    return lifespan


async def the_jobs(request: Request) -> AsyncIterator[Jobs]:
    """The dependency: the app's queue."""
    yield request.app.state.jobs


JobsDep = Annotated[Jobs, Depends(the_jobs)]


def make_app(endpoint: str | None = None, interval: float = SPOT_INTERVAL) -> FastAPI:
    """The service; ``endpoint`` overrides the environment's, ``interval`` is the poll period
    in seconds."""
    app = FastAPI(lifespan=lifespan_for(endpoint, interval))

    @app.post("/jobs", status_code=status.HTTP_202_ACCEPTED)
    async def submit(jobs: JobsDep, response: Response) -> dict[str, Any]:
        """Queue a job, or refuse it (503) while draining."""
        if jobs.draining:
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
            response.headers["Retry-After"] = str(RETRY_AFTER)
            return {"error": "draining: this spot instance is being interrupted"}
        jobs.submitted += 1
        jobs.queue.put_nowait(jobs.submitted)
        return {"job": jobs.submitted}

    @app.get("/health")
    async def health(jobs: JobsDep, response: Response) -> dict[str, Any]:
        """200 while serving; 503 once draining (with the notice's action and time)."""
        body: dict[str, Any] = {"status": "serving", "done": jobs.done,
                                "queued": jobs.queue.qsize()}
        if jobs.draining:
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
            body["status"] = "drained" if jobs.drained.is_set() else "draining"
        if jobs.notice is not None:
            body.update(action=jobs.notice.action, time=jobs.notice.time.isoformat())
        return body

    return app


def main() -> None:
    import uvicorn  # only to serve from the command line

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoint", help="IMDS endpoint (default: from the environment)")
    parser.add_argument("--interval", type=float, default=SPOT_INTERVAL,
                        help=f"seconds between polls (default: {SPOT_INTERVAL:g})")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    uvicorn.run(make_app(args.endpoint, args.interval), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
