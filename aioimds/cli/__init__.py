"""The ``aioimds`` command (and ``python -m aioimds``): get, ls, dump, serve.

Exit status: 0 success; 1 the service failed us (unreachable, token refused, incomplete dump);
2 usage or configuration error (a bad PATH too); 3 ``get``/``ls`` of a path that does not exist
(404).
Data goes to stdout, diagnostics to stderr; an expected failure never prints a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from typing import BinaryIO

from .._version import __version__
from ..client import IMDSClient
from ..config import IMDSConfig
from ..crawl import DEFAULT_CONCURRENCY, CrawlResult
from ..errors import (
    IMDSConfigError,
    IMDSError,
    IMDSNotFoundError,
    PathError,
    SnapshotFormatError,
)
from ..render import flat_lines, nested, redact

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND = 0, 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    from ..emulator.serve import add_serve_arguments

    p = argparse.ArgumentParser(
        prog="aioimds",
        description="asyncio client for the EC2 Instance Metadata Service (IMDS).",
        epilog="PATH is relative to latest/ (meta-data/placement/region). Each global option "
               "has its AWS environment variable; the option wins.")
    p.add_argument("--version", action="version", version=f"aioimds {__version__}")
    p.add_argument("--endpoint", metavar="URL",
                   help="IMDS endpoint (AWS_EC2_METADATA_SERVICE_ENDPOINT)")
    p.add_argument("--endpoint-mode", choices=["IPv4", "IPv6"],
                   help="IPv4 or IPv6 endpoint (AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE)")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="seconds per attempt (AWS_METADATA_SERVICE_TIMEOUT, default 1)")
    p.add_argument("--attempts", type=int, metavar="N",
                   help="attempts per request (AWS_METADATA_SERVICE_NUM_ATTEMPTS, default 3)")
    p.add_argument("--emulator", action="store_true",
                   help="run against the embedded emulator with the bundled default tree "
                        "(ignores AWS_EC2_METADATA_DISABLED)")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="log to stderr (-v info, -vv debug); secrets are never logged")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    get = sub.add_parser("get", help="print one leaf's body, bytes as served")
    get.add_argument("path", metavar="PATH",
                     help="leaf path relative to latest/, e.g. meta-data/placement/region")
    ls = sub.add_parser("ls", help="print one listing, one entry a line, as served")
    ls.add_argument("path", metavar="PATH", nargs="?", default="",
                    help="listing path relative to latest/ (default: latest/ itself)")
    dump = sub.add_parser("dump", help="crawl all of latest/ and print it")
    dump.add_argument("--format", choices=["json", "snapshot", "flat"], default="json",
                      help="json: nested view (default); snapshot: imds-snapshot/1; "
                           "flat: path: value lines")
    dump.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")
    dump.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, metavar="N",
                      help=f"requests in flight (default {DEFAULT_CONCURRENCY})")
    dump.add_argument("--include-secrets", action="store_true",
                      help="keep SecretAccessKey and Token in credential documents")
    dump.add_argument("--partial", action="store_true",
                      help="on failures, still write what succeeded (the exit status is 1)")
    serve = sub.add_parser("serve", help="run the IMDS emulator until SIGINT/SIGTERM")
    add_serve_arguments(serve)
    return p


def _render(result: CrawlResult, fmt: str, include_secrets: bool) -> str:
    snap = result.snapshot if include_secrets else redact(result.snapshot)
    if fmt == "snapshot":
        return snap.dumps()
    if fmt == "flat":
        return "".join(line + "\n" for line in flat_lines(snap))
    return json.dumps(nested(snap), indent=2, ensure_ascii=False) + "\n"


def _write(data: bytes, output: str | None, stdout: BinaryIO) -> None:
    if output is None:
        stdout.write(data)
        stdout.flush()
    else:
        with open(output, "wb") as fh:
            fh.write(data)


@contextlib.asynccontextmanager
async def _endpoint(args: argparse.Namespace) -> AsyncIterator[str | None]:
    """The endpoint to use: the embedded emulator's URL with ``--emulator``."""
    if not args.emulator:
        yield args.endpoint
        return
    from ..emulator import Emulator

    async with Emulator() as emu:
        yield emu.url


async def _run(args: argparse.Namespace, stdout: BinaryIO) -> int:
    async with _endpoint(args) as endpoint:
        config = IMDSConfig.from_environment(
            endpoint=endpoint, endpoint_mode=args.endpoint_mode, timeout=args.timeout,
            attempts=args.attempts,
            # the embedded emulator is local: AWS_EC2_METADATA_DISABLED is about the real IMDS
            disabled=False if args.emulator else None)
        async with IMDSClient(config) as imds:
            if args.command == "get":
                _write(await imds.get_bytes(args.path), None, stdout)
            elif args.command == "ls":
                entries = await imds.list(args.path)
                _write("".join(e + "\n" for e in entries).encode(), None, stdout)
            else:
                result = await imds.dump(concurrency=args.concurrency, partial=True)
                if result.complete or args.partial:
                    _write(_render(result, args.format, args.include_secrets).encode(),
                           args.output, stdout)
                if not result.complete:
                    for path, err in sorted(result.failures.items()):
                        print(f"aioimds: {path}: {err.message}", file=sys.stderr)
                    print(f"aioimds: incomplete dump: {len(result.failures)} path(s) failed",
                          file=sys.stderr)
                    return EXIT_FAILED
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.emulator and (args.endpoint or args.command == "serve"):
        parser.error("--emulator runs get/ls/dump against the embedded emulator: it goes "
                     "with neither --endpoint nor serve")
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG if args.verbose > 1 else logging.INFO,
                            format="aioimds: %(levelname)s %(message)s")
    try:
        if args.command == "serve":
            from ..emulator.serve import run_serve

            return asyncio.run(run_serve(args, lambda line: print(line, flush=True)))
        if args.command == "dump" and args.concurrency < 1:
            raise IMDSConfigError("--concurrency must be >= 1")
        return asyncio.run(_run(args, sys.stdout.buffer))
    except IMDSNotFoundError as exc:
        print(f"aioimds: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except (IMDSConfigError, SnapshotFormatError, PathError) as exc:
        print(f"aioimds: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except IMDSError as exc:
        print(f"aioimds: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        print(f"aioimds: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130

