"""What the CLI says on stderr: log lines of the ``aioimds`` loggers only, and a progress line.

``-v`` shows INFO (which endpoint and why, token or IMDSv1, a dump's summary), ``-vv`` DEBUG
(each retry). Only the ``aioimds`` logger tree is shown: asyncio's and aiohttp's own debug
lines stay out. Warnings (a watcher's failed poll) are shown without ``-v``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import TextIO

from .. import clock
from ..stats import CrawlProgress

__all__ = ["PROGRESS_AFTER", "PROGRESS_EVERY", "log", "progress_line", "setup_logging"]

PROGRESS_AFTER = 1.0
"""Seconds a dump runs before its progress line appears (a quick dump shows none)."""
PROGRESS_EVERY = 0.25
"""Seconds between updates of the progress line."""

log = logging.getLogger("aioimds.cli")


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return f"aioimds: {level}{record.getMessage()}"


def setup_logging(verbosity: int, stream: TextIO) -> Callable[[], None]:
    """Send the ``aioimds`` loggers to ``stream``: WARNING and up, INFO with one ``-v``,
    DEBUG with two. Returns the function that undoes it (``main`` calls it at the end, so a
    program that calls ``main`` keeps its own logging set-up)."""
    root = logging.getLogger("aioimds")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_Format())
    level, propagate = root.level, root.propagate
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbosity > 1 else
                  logging.INFO if verbosity == 1 else logging.WARNING)
    root.propagate = False

    def restore() -> None:
        root.removeHandler(handler)
        root.setLevel(level)
        root.propagate = propagate

    return restore


@contextlib.asynccontextmanager
async def progress_line(progress: CrawlProgress, stream: TextIO) -> AsyncIterator[None]:
    """While the body runs, show ``progress`` on one line of ``stream`` after
    :data:`PROGRESS_AFTER` seconds, updated every :data:`PROGRESS_EVERY`, and erase it at the
    end; nothing at all when ``stream`` is not a terminal."""
    if not stream.isatty():
        yield
        return
    start = clock.now()
    shown = False

    async def show() -> None:
        nonlocal shown
        await asyncio.sleep(PROGRESS_AFTER)
        while True:
            elapsed = max(clock.now() - start, 1e-9)
            stream.write(f"\r\x1b[Kaioimds: {progress.done} paths done, {progress.queued} "
                         f"queued, {progress.done / elapsed:.0f} paths/s")
            stream.flush()
            shown = True
            await asyncio.sleep(PROGRESS_EVERY)

    task = asyncio.ensure_future(show())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if shown:
            stream.write("\r\x1b[K")
            stream.flush()
