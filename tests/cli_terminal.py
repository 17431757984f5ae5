"""Running the ``aioimds`` command with a pseudo-terminal as its stdout, for the behaviour that
differs on a terminal (newlines, binary refused, escaped control characters)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys


def on_a_terminal(*argv: str) -> tuple[int, bytes, bytes]:
    """Run ``python -m aioimds ARGV`` with a pseudo-terminal as stdout; returns (status,
    terminal output, stderr)."""
    leader, follower = pty.openpty()
    env = {**os.environ, "AWS_CONFIG_FILE": os.devnull}
    with subprocess.Popen([sys.executable, "-m", "aioimds", *argv], stdout=follower,
                          stderr=subprocess.PIPE, env=env) as proc:
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.stderr is not None
        err = proc.stderr.read()
        rc = proc.wait(timeout=60)
    os.close(leader)
    return rc, b"".join(chunks), err
