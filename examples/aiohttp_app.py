"""An aiohttp web service that learns its region and instance id from IMDS at start-up.

    AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1338 python examples/aiohttp_app.py
    python examples/aiohttp_app.py --endpoint http://127.0.0.1:1338 --port 8080
    curl http://127.0.0.1:8080/   ->  {"region": "ap-northeast-1", "instance_id": "i-..."}

One IMDSClient lives as long as the app (a ``cleanup_ctx``: opened before the app serves,
closed after it stops), as aiohttp recommends for any client session. The start-up awaits the
region and the instance id concurrently and fails, so the app never serves, when IMDS cannot
give them. Without ``--endpoint`` the client takes its settings from the environment
(``AWS_EC2_METADATA_SERVICE_ENDPOINT``, ...). Ctrl+C or SIGTERM stops it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass

from aiohttp import web

from aioimds import IMDSClient


@dataclass(frozen=True)
class Instance:
    """What the service says about the instance it runs on."""

    region: str
    instance_id: str


IMDS = web.AppKey("imds", IMDSClient)
INSTANCE = web.AppKey("instance", Instance)


def imds_context(
    endpoint: str | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A ``cleanup_ctx`` entry: open the client, read the instance, close it at shutdown."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        imds_client = IMDSClient(endpoint=endpoint) if endpoint else IMDSClient()
        async with imds_client as imds:
            region, instance_id = await asyncio.gather(
                imds.get("meta-data/placement/region"), imds.get("meta-data/instance-id"))
            app[IMDS] = imds
            app[INSTANCE] = Instance(region=region, instance_id=instance_id)
            yield

    return context


async def describe(request: web.Request) -> web.Response:
    """``GET /``: the instance's region and id as JSON."""
    return web.json_response(asdict(request.app[INSTANCE]))


def make_app(endpoint: str | None = None) -> web.Application:
    """The service; ``endpoint`` overrides the IMDS endpoint of the environment."""
    app = web.Application()
    app.cleanup_ctx.append(imds_context(endpoint))
    app.router.add_get("/", describe)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoint", help="IMDS endpoint (default: from the environment)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    web.run_app(make_app(args.endpoint), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
