"""Reads for the thin layers (typed views, credentials): 404 as "absent", and concurrent gathers.

The typed views and the credentials provider never open a second HTTP path: they call the
client's own ``get``/``get_bytes``/``list`` (DESIGN.md section 7, point 6), described here by
:class:`Source` so that these modules need not import ``client``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Protocol, TypeVar

from ..errors import IMDSNotFoundError

__all__ = ["Source", "gather_all", "optional_entries", "optional_text"]

T = TypeVar("T")


class Source(Protocol):
    """What the thin layers need of an IMDS client (:class:`~aioimds.IMDSClient` is one).

    ``max_age`` (seconds, or ``math.inf``) accepts an answer the source got at most that long
    ago; ``None`` asks the service (a source without a cache ignores it).
    """

    async def get(self, path: str, *, max_age: float | None = None) -> str:
        """The leaf at ``path`` (relative to ``latest/``) as text; 404 raises."""

    async def get_bytes(self, path: str, *, max_age: float | None = None) -> bytes:
        """The leaf at ``path`` as bytes, as served; 404 raises."""

    async def list(self, path: str = "", *, max_age: float | None = None) -> list[str]:
        """The entries of the listing at ``path``, as served; 404 raises."""


async def optional_text(source: Source, path: str, max_age: float | None = None) -> str | None:
    """The leaf at ``path`` as text, or ``None`` when the service answers 404 (it is absent).

    Raises: every other :class:`~aioimds.IMDSError` of ``source.get``.
    """
    try:
        return await source.get(path, max_age=max_age)
    except IMDSNotFoundError:
        return None


async def optional_entries(source: Source, path: str,
                           max_age: float | None = None) -> list[str]:
    """The entries of the listing at ``path``, or ``[]`` when the service answers 404.

    Raises: every other :class:`~aioimds.IMDSError` of ``source.list``.
    """
    try:
        return await source.list(path, max_age=max_age)
    except IMDSNotFoundError:
        return []


async def gather_all(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """Await all of ``awaitables`` concurrently, results in order.

    When one fails the others are cancelled (none is left running) and the error is raised.
    """
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
