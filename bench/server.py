"""Start ``aioimds serve`` in a separate process, so client and emulator use separate loops."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator

from aioimds import Snapshot


@contextlib.contextmanager
def served(*args: str, snapshot: Snapshot | None = None) -> Iterator[str]:
    """Run ``aioimds serve --port 0 ARGS`` (with ``snapshot`` written to a temporary file);
    yield its URL; stop it with SIGTERM."""
    with contextlib.ExitStack() as stack:
        extra: list[str] = []
        if snapshot is not None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            path = os.path.join(tmp, "tree.snapshot.json")
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(snapshot.to_json(), fh)
            extra = ["--snapshot", path]
        proc = stack.enter_context(subprocess.Popen(
            [sys.executable, "-m", "aioimds", "serve", "--port", "0", *extra, *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL))
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().decode().strip()
            if not url.startswith("http://"):
                raise RuntimeError("aioimds serve did not print its URL")
            yield url
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
