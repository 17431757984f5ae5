"""Writing a command's data to stdout or to ``--output FILE``.

A file is prepared before any request (so an unwritable place fails at once, before a long
crawl) and written whole at the end: the data goes to a temporary file beside the target, which
is renamed over it, so a failed or interrupted command never leaves a truncated file. A file
holding secrets (``--include-secrets``) gets mode 0600; others get the usual ``0666 & ~umask``.
A target that exists and is not a regular file (``/dev/null``, a FIFO) is written directly.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from typing import BinaryIO

__all__ = ["Output", "umask"]


def umask() -> int:
    """The process umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class Output:
    """Where the data goes: stdout (``path=None``) or a file.

    Raises (from the constructor): :class:`OSError` when the file cannot be written; the CLI
    maps it to exit status 2.
    """

    def __init__(self, path: str | None, *, secret: bool = False,
                 stdout: BinaryIO | None = None) -> None:
        self.path = path
        self._stdout = stdout if stdout is not None else sys.stdout.buffer
        self._tmp: str | None = None
        if path is None:
            return
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None and stat.S_ISDIR(mode):  # before the crawl, not at its end
            raise IsADirectoryError(f"{path} is a directory")
        if mode is not None and not stat.S_ISREG(mode):
            if not os.access(path, os.W_OK):
                raise PermissionError(f"cannot write to {path}")
            return
        directory = os.path.dirname(os.path.abspath(path))
        try:
            fd, self._tmp = tempfile.mkstemp(dir=directory, prefix=".aioimds-", suffix=".tmp")
        except OSError as exc:  # name the user's path, not the hidden temporary file
            raise type(exc)(exc.errno, exc.strerror, path) from None
        os.close(fd)  # mkstemp makes it 0600: right for secrets, widened below otherwise
        if not secret:
            os.chmod(self._tmp, 0o666 & ~umask())

    def write(self, data: bytes, *, secret: bool = False) -> None:
        """Write ``data`` (all of it, once) and finish; ``secret`` makes a new file 0600
        whatever the constructor was told (data found to hold secrets once fetched)."""
        if secret and self._tmp is not None:
            os.chmod(self._tmp, 0o600)
        if self.path is None:
            self._stdout.write(data)
            self._stdout.flush()
        elif self._tmp is None:
            with open(self.path, "wb") as fh:
                fh.write(data)
        else:
            with open(self._tmp, "wb") as fh:
                fh.write(data)
            os.replace(self._tmp, self.path)
            self._tmp = None

    def discard(self) -> None:
        """Remove the temporary file when nothing was written (a failed command)."""
        if self._tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)
            self._tmp = None
