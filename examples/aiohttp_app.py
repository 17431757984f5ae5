"""An aiohttp web service that answers with its instance's region and id, read from IMDS.

    AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1338 python examples/aiohttp_app.py
    python examples/aiohttp_app.py --endpoint http://127.0.0.1:1338 --port 8080
    curl http://127.0.0.1:8080/   ->  {"region": "ap-northeast-1", "instance_id": "i-..."}

One IMDSClient lives as long as the app (a ``cleanup_ctx``: opened before the app serves,
closed after it stops), as aiohttp recommends for any client session. Every request awaits
``imds.region()`` and ``imds.instance_id()``: the typed views cache what cannot change while
the instance runs, so however many requests arrive, and however many at once, IMDS is asked
once for each (one token PUT and two GETs for the app's life). The start-up reads them
already and fails, so the app never serves, when IMDS cannot give them. Without
``--endpoint`` the client takes its settings from the environment
(``AWS_EC2_METADATA_SERVICE_ENDPOINT``, ...). Ctrl+C or SIGTERM stops it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from aioimds import IMDSClient, IMDSError

IMDS = web.AppKey("imds", IMDSClient)


def imds_context(
    endpoint: str | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A ``cleanup_ctx`` entry: open the client, check IMDS answers, close it at shutdown."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        imds_client = IMDSClient(endpoint=endpoint) if endpoint else IMDSClient()
        async with imds_client as imds:
            region, instance_id = await asyncio.gather(imds.region(), imds.instance_id())
            if region is None or instance_id is None:
                raise RuntimeError("IMDS serves no region or instance id")
            app[IMDS] = imds
            yield

    return context


async def describe(request: web.Request) -> web.Response:
    """``GET /``: the instance's region and id as JSON (cached reads: no request to IMDS)."""
    imds = request.app[IMDS]
    region, instance_id = await asyncio.gather(imds.region(), imds.instance_id())
    return web.json_response({"region": region, "instance_id": instance_id})


def make_app(endpoint: str | None = None) -> web.Application:
    """The service; ``endpoint`` overrides the IMDS endpoint of the environment."""
    app = web.Application()
    app.cleanup_ctx.append(imds_context(endpoint))
    app.router.add_get("/", describe)
    return app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoint", help="IMDS endpoint (default: from the environment)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on")
    parser.add_argument("--port", type=int, default=8080, help="port to serve on")
    args = parser.parse_args()
    try:
        web.run_app(make_app(args.endpoint), host=args.host, port=args.port)
    except (IMDSError, RuntimeError) as exc:
        # One line, in this program's own terms: the library's message may suggest options of
        # the aioimds CLI (--emulator) that this program does not have.
        where = args.endpoint or "the endpoint of the environment"
        status = f", status {exc.status}" if isinstance(exc, IMDSError) and exc.status else ""
        print(f"{parser.prog}: error: cannot read the region and instance id from IMDS at "
              f"{where} ({type(exc).__name__}{status}); start an emulator (aioimds serve) and "
              "pass --endpoint http://127.0.0.1:PORT, or check the instance's metadata "
              "options", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
