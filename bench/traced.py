"""An emulator in a child process that reports its request trace: what reached the wire.

``with traced() as server:`` starts ``python -m bench.traced`` (the default tree on
127.0.0.1, a free port); ``server.url`` is its endpoint and ``server.requests()`` returns the
requests the emulator answered since the last call, counted by method from its request trace
(:attr:`aioimds.emulator.Counters.trace`), and clears the trace. The child reads one command a
line on stdin (``trace``) and answers one JSON line on stdout, so the count comes from the
server's side, as the service would see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator

from aioimds.emulator import Emulator

__all__ = ["TracedServer", "traced"]


class TracedServer:
    """The running child: its URL and its trace."""

    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self._proc = proc
        self.url = url

    def requests(self) -> dict[str, int]:
        """Requests answered since the last call, by method (``{"PUT": 1, "GET": 1}``)."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write("trace\n")
        self._proc.stdin.flush()
        counts: dict[str, int] = json.loads(self._proc.stdout.readline())
        return counts


@contextlib.contextmanager
def traced() -> Iterator[TracedServer]:
    """Run the traced emulator in a child process; stop it (stdin closed) afterwards."""
    with subprocess.Popen([sys.executable, "-m", "bench.traced"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None and proc.stdin is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError("the traced emulator did not print its URL")
        try:
            yield TracedServer(proc, url)
        finally:
            proc.stdin.close()
            proc.wait(timeout=30)


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    async with Emulator() as emu:
        print(emu.url, flush=True)
        while (line := await loop.run_in_executor(None, sys.stdin.readline)):
            if line.strip() == "trace":
                counts = Counter(entry.method for entry in emu.counters.trace)
                emu.counters.reset()
                print(json.dumps(dict(counts)), flush=True)


if __name__ == "__main__":
    asyncio.run(_serve())
