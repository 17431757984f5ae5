"""Print the region of an IMDS endpoint, walking the tree the way a careful client does.

    python examples/region.py                         # against the embedded emulator
    python examples/region.py http://127.0.0.1:1338   # against any endpoint (never run this
                                                      # against a host that is not yours)

The walk: PUT a token (TTL 21600 s), list the API versions at ``/``, list ``/latest/``, list
``meta-data/``, list ``placement/``, then get ``placement/region``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

from aioimds import IMDSClient, IMDSConfig
from aioimds.emulator import Emulator


@contextlib.asynccontextmanager
async def endpoint(argv: list[str]) -> AsyncIterator[str]:
    """The endpoint given on the command line, or a running emulator's URL."""
    if argv:
        yield argv[0]
    else:
        async with Emulator() as emu:
            yield emu.url


async def region(url: str) -> str:
    """Walk to ``meta-data/placement/region`` at ``url`` and return it."""
    async with IMDSClient(IMDSConfig(endpoint=url, token_ttl=21600)) as imds:
        versions = await imds.list("/")
        print("versions:", ", ".join(versions), file=sys.stderr)
        print("latest/:", ", ".join(await imds.list("")), file=sys.stderr)
        categories = await imds.list("meta-data/")
        print("meta-data/:", len(categories), "entries", file=sys.stderr)
        print("placement/:", ", ".join(await imds.list("meta-data/placement/")), file=sys.stderr)
        return await imds.get("meta-data/placement/region")


async def main(argv: list[str]) -> None:
    async with endpoint(argv) as url:
        print(await region(url))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
