"""``get``, ``ls`` and ``dump``: the data commands."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import BinaryIO, TextIO
from urllib.parse import unquote

from .. import clock
from ..client import IMDSClient
from ..crawl import CrawlResult
from ..errors import IMDSConfigError, IMDSNotFoundError, IMDSResponseError
from ..paths import ROOT, child_path, request_path
from ..render import flat_lines, holds_secrets, nested, redact
from ..stats import CrawlProgress, RequestStats
from .log import log, progress_line
from .output import Output
from .settings import Settings
from .tree import DEFAULT_WIDTH, escape, tree_lines

__all__ = ["BinaryOnTerminal", "NotAListing", "check_listing", "log_token_use", "run_dump",
           "run_get", "run_ls"]


class BinaryOnTerminal(IMDSConfigError):
    """``get`` of a binary leaf with a terminal as stdout (exit status 2)."""


class NotAListing(IMDSConfigError):
    """``dump PATH`` of a leaf (exit status 2)."""


def log_settings(settings: Settings) -> None:
    """``-v``: which endpoint is used, and why."""
    log.info("endpoint %s (%s)", settings.config.base_url, settings.endpoint_reason())


def log_token_use(stats: RequestStats) -> None:
    """``-v``: whether requests went with an IMDSv2 token or without one (IMDSv1)."""
    if stats.without_token:
        log.info("IMDSv1: %d request(s) sent without a token (the token PUT failed)",
                 stats.without_token)
    elif stats.token_puts:
        log.info("IMDSv2: requests sent with a session token (%d token PUT)", stats.token_puts)


def _binary(body: bytes) -> bool:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return any(not c.isprintable() and c not in "\t\n\r" for c in text)


async def run_get(args: argparse.Namespace, imds: IMDSClient, stdout: BinaryIO) -> int:
    """``get PATH``: the body as served. On a terminal (no ``--output``, no ``--raw``) a
    missing final newline is added and binary bytes are refused."""
    out = Output(args.output, stdout=stdout)
    try:
        body = await imds.get_bytes(args.path)
        if args.output is None and not args.raw and stdout.isatty():
            if _binary(body):
                raise BinaryOnTerminal(
                    f"{request_path(args.path)} is binary ({len(body)} bytes); not printed on "
                    "a terminal: use --output FILE, or --raw to print it anyway")
            if not body.endswith(b"\n"):
                body += b"\n"
        out.write(body, secret=holds_secrets(body))  # role credentials: a 0600 file
    finally:
        out.discard()
    return 0


async def run_ls(args: argparse.Namespace, imds: IMDSClient, stdout: BinaryIO) -> int:
    """``ls [PATH]``: one entry a line, as served; on a terminal, characters that are not
    printable are shown escaped (an entry must not drive the terminal)."""
    entries = await imds.list(args.path)
    if stdout.isatty():
        entries = [escape(e) for e in entries]
    Output(None, stdout=stdout).write("".join(e + "\n" for e in entries).encode())
    return 0


async def check_listing(imds: IMDSClient, root: str) -> None:
    """Check that the request path ``root`` is a listing its parent lists (one request), so
    ``dump PATH`` of a leaf or of a missing path says so instead of printing ``{}``.

    Raises: :class:`~aioimds.IMDSNotFoundError` (exit 3) when the parent does not list it,
    :class:`NotAListing` (exit 2) when it names a leaf.
    """
    if root == ROOT:
        return
    parent = root[:-1].rsplit("/", 1)[0] + "/"
    children = set()
    for entry in await imds.list(unquote(parent)):
        with contextlib.suppress(IMDSResponseError):
            children.add(child_path(parent, entry))
    if root in children:
        return
    if root[:-1] in children:
        raise NotAListing(f"{root[:-1]} is a leaf, not a listing: use 'aioimds get'")
    raise IMDSNotFoundError(f"not listed in {parent}", path=root, status=404)


def render(result: CrawlResult, args: argparse.Namespace, width: int) -> bytes:
    """The dump in ``args.format``, redacted unless ``--include-secrets``."""
    snap = result.snapshot if args.include_secrets else redact(result.snapshot)
    if args.format == "snapshot":
        return snap.dumps().encode()
    if args.format == "flat":
        return "".join(line + "\n" for line in flat_lines(snap)).encode()
    root = _root(args.path)
    if args.format == "tree":
        return "".join(line + "\n" for line in tree_lines(snap, root, width)).encode()
    return (json.dumps(nested(snap, root), indent=2, ensure_ascii=False) + "\n").encode()


def _root(path: str) -> str:
    return request_path(path if path.endswith("/") or not path else path + "/")


async def run_dump(args: argparse.Namespace, imds: IMDSClient, stdout: BinaryIO,
                   stderr: TextIO) -> int:
    """``dump [PATH]``: crawl, then write the chosen format; exit 1 when incomplete."""
    out = Output(args.output, secret=args.include_secrets, stdout=stdout)
    try:
        await check_listing(imds, _root(args.path))
        progress = CrawlProgress()
        start = clock.now()
        async with progress_line(progress, stderr):
            result = await imds.dump(args.path, concurrency=args.concurrency, partial=True,
                                     progress=progress)
        s = imds.stats
        log.info("dump: %d paths in %.2f s: %d requests, %d retries, %d 429s, %d drops",
                 progress.done, clock.now() - start, s.requests, s.retries, s.throttled,
                 s.dropped)
        width = DEFAULT_WIDTH
        if args.output is None and stdout.isatty():
            import shutil

            width = shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
        # --partial writes what succeeded, never an empty dump (nothing answered)
        if result.complete or (args.partial and len(result.snapshot)):
            out.write(render(result, args, width))
    finally:
        out.discard()
    if not result.complete:
        for path, err in sorted(result.failures.items()):
            print(f"aioimds: {path}: {err.message}", file=sys.stderr)
        print(f"aioimds: incomplete dump: {len(result.failures)} path(s) failed",
              file=sys.stderr)
        return 1
    return 0
