"""Reads for the thin layers (typed views, credentials): 404 as "absent", and concurrent gathers.

Two kinds of absent: an optional key, read without a listing naming it (``optional_text``), is
``None`` at its first 404; a key its parent listing named (``listed_text``) is asked again on
:func:`aioimds.retry.listed_404_delay`'s schedule first, since IMDS lists a freshly attached
interface before its keys answer (amazon-ec2-net-utils #38). Neither logs: absent is an answer
(vector #8677).

The typed views and the credentials provider never open a second HTTP path: they call the
client's own ``get``/``get_bytes``/``list`` (DESIGN.md section 7, point 6), described here by
:class:`Source` so that these modules need not import ``client``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol, TypeVar

from .. import clock
from ..errors import IMDSNotFoundError
from ..retry import listed_404_delay

__all__ = ["Source", "gather_all", "listed_entries", "listed_text", "optional_entries",
           "optional_text"]

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


async def listed_text(source: Source, path: str, max_age: float | None = None) -> str | None:
    """The leaf at ``path``, which its parent listing named, as text; ``None`` when it still
    answers 404 after the listed-404 retries (at most about 2.5 s).

    ``max_age`` applies to the first read; each retry asks the service (a kept 404 is what
    is being doubted) and keeps its answer.

    Raises: every other :class:`~aioimds.IMDSError` of ``source.get``.
    """
    async def read(age: float | None) -> str:
        return await source.get(path, max_age=age)

    return await _listed(read, max_age)


async def listed_entries(source: Source, path: str,
                         max_age: float | None = None) -> list[str]:
    """The entries of the listing at ``path``, which its parent listing named; ``[]`` when it
    still answers 404 after the listed-404 retries; ``max_age`` as in :func:`listed_text`.

    Raises: every other :class:`~aioimds.IMDSError` of ``source.list``.
    """
    async def read(age: float | None) -> list[str]:
        return await source.list(path, max_age=age)

    entries = await _listed(read, max_age)
    return [] if entries is None else entries


async def _listed(read: Callable[[float | None], Awaitable[T]], max_age: float | None,
                  ) -> T | None:
    first = clock.now()
    retry, age = 0, max_age
    while True:
        try:
            return await read(age)
        except IMDSNotFoundError:
            retry += 1
            delay = listed_404_delay(retry, clock.now() - first)
            if delay is None:
                return None
            # Asked again after a wait: max_age 0 misses the kept 404 and keeps the answer.
            age = None if max_age is None else 0.0
            await asyncio.sleep(delay)


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
