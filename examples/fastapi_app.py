"""A FastAPI service with one IMDSClient for its life: a lifespan opens it, a dependency yields it.

    pip install 'aioimds[examples]' uvicorn
    export AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1338
    uvicorn --app-dir examples fastapi_app:app          # from the repository root
    python examples/fastapi_app.py --endpoint http://127.0.0.1:1338 --port 8080   # the same
    curl http://127.0.0.1:8080/   ->  {"region": "ap-northeast-1", "instance_id": "i-...", ...}

The lifespan opens the client before the app serves (and checks that IMDS answers, so a
service that cannot learn where it runs never starts), keeps it on ``app.state``, and closes it
after the last request. ``imds_client`` is the dependency a route asks for
(``imds: Imds``): it yields that one client, so every request shares its token and its
connections. The typed views cache what cannot change while the instance runs (region,
instance id, ...), so the routes can await them on every request: IMDS is asked once. The same
lifespan and dependency work in Starlette (``Starlette(lifespan=lifespan)``,
``request.app.state.imds``).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated

from fastapi import Depends, FastAPI, Request

from aioimds import IMDSClient

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def lifespan_for(endpoint: str | None = None) -> Lifespan:
    """The app's lifespan: one client, opened at start-up and closed at shutdown.

    ``endpoint`` overrides the IMDS endpoint of the environment."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with IMDSClient(endpoint=endpoint) if endpoint else IMDSClient() as imds:
            if await imds.instance_id() is None:
                raise RuntimeError("IMDS serves no instance id: not an EC2 instance?")
            app.state.imds = imds
            yield

    return lifespan


async def imds_client(request: Request) -> AsyncIterator[IMDSClient]:
    """The dependency: the app's one open client (never closed per request)."""
    yield request.app.state.imds


Imds = Annotated[IMDSClient, Depends(imds_client)]


def make_app(endpoint: str | None = None) -> FastAPI:
    """The service; ``endpoint`` overrides the IMDS endpoint of the environment."""
    app = FastAPI(lifespan=lifespan_for(endpoint))

    @app.get("/")
    async def where(imds: Imds) -> dict[str, str | None]:
        """Where this instance runs (cached reads: no request to IMDS after the first)."""
        return {"region": await imds.region(),
                "availability_zone": await imds.availability_zone(),
                "instance_id": await imds.instance_id(),
                "instance_type": await imds.instance_type()}

    return app


app = make_app()
"""For ``uvicorn --app-dir examples fastapi_app:app`` (the endpoint from the environment)."""


def main() -> None:
    import uvicorn  # only to serve from the command line

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoint", help="IMDS endpoint (default: from the environment)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    uvicorn.run(make_app(args.endpoint), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
