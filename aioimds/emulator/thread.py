"""An event loop of its own in a background thread, for the emulator's thread mode.

A synchronous client (botocore, boto3, requests, urllib3, Starlette's ``TestClient``) blocks the
thread that calls it. When the emulator serves on that same thread's event loop, nothing answers
until the client gives up (botocore returns no credentials after its 1 s timeout twice). Running
the emulator on a loop in another thread lets it answer while the caller blocks:
:meth:`aioimds.emulator.Emulator.in_thread` uses this module.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["START_TIMEOUT", "BackgroundLoop"]

START_TIMEOUT = 30.0
"""Seconds to wait for the loop thread to start the emulator (a bind, or an RSA key when
signing) before giving up with :class:`TimeoutError`."""

T = TypeVar("T")


class BackgroundLoop:
    """A new event loop running forever in a daemon thread until :meth:`close`."""

    def __init__(self, name: str = "aioimds-emulator") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    @property
    def in_loop_thread(self) -> bool:
        """Whether the caller is the loop's own thread."""
        return threading.get_ident() == self._thread.ident

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and return its result (its exception is raised here)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, func: Callable[..., T], *args: Any) -> T:
        """Call ``func(*args)`` on the loop thread and return its result (or raise its
        exception) once it has run."""
        if self.in_loop_thread:
            return func(*args)
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def apply() -> None:
            try:
                done.set_result(func(*args))
            except BaseException as exc:  # handed to the caller's thread
                done.set_exception(exc)

        self.loop.call_soon_threadsafe(apply)
        return done.result()

    def close(self) -> None:
        """Stop the loop, wait for its thread to end and close the loop."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()
