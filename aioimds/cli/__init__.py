"""The ``aioimds`` command (and ``python -m aioimds``): get, ls, dump, serve, doctor, watch,
diff, completion (DESIGN.md section 2).

Exit status: 0 success; 1 the service failed us (unreachable, token refused, incomplete dump;
``doctor``: not healthy; ``diff``: the snapshots differ); 2 usage or configuration error (a bad
PATH too; ``diff``: any trouble); 3 ``get``/``ls`` of a path that does not exist (404).
Data goes to stdout, diagnostics to stderr; an expected failure never prints a traceback.

One module per command or concern: ``parser`` (every option, the global ones declared once),
``settings`` (the effective configuration and its sources), ``commands`` (get, ls, dump),
``output`` (files written whole, 0600 for secrets), ``tree``, ``log`` (logging and progress),
``doctor`` and ``probes``, ``watch``, ``diff``, ``completion``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import BinaryIO

from ..client import IMDSClient
from ..errors import (
    IMDSConfigError,
    IMDSError,
    IMDSNotFoundError,
    PathError,
    SnapshotFormatError,
)
from .log import setup_logging
from .parser import build_parser, verbosity

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND = 0, 1, 2, 3


async def _run(args: argparse.Namespace, stdout: BinaryIO) -> int:
    from .commands import log_settings, log_token_use, run_dump, run_get, run_ls
    from .settings import open_settings

    if args.command == "doctor":
        from .doctor import run_doctor

        return await run_doctor(args, stdout)
    if args.command == "diff":
        from .diff import run_diff

        return await run_diff(args, stdout, sys.stdin.buffer)
    async with open_settings(args) as settings:
        log_settings(settings)
        async with IMDSClient(settings.config) as imds:
            try:
                if getattr(args, "wait", None):
                    from ..ready import wait_until_ready

                    await wait_until_ready(imds, args.wait)
                if args.command == "get":
                    return await run_get(args, imds, stdout)
                if args.command == "ls":
                    return await run_ls(args, imds, stdout)
                if args.command == "watch":
                    from .watch import run_watch

                    return await run_watch(args, imds, stdout)
                return await run_dump(args, imds, stdout, sys.stderr)
            finally:
                log_token_use(imds.stats)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "emulator", False) and (getattr(args, "endpoint", None)
                                             or args.command in ("serve", "completion")):
        parser.error("--emulator runs a command against the embedded emulator: it goes "
                     "with neither --endpoint nor serve")
    restore_logging = setup_logging(verbosity(args), sys.stderr)
    try:
        if args.command == "serve":
            from ..emulator.serve import run_serve

            return asyncio.run(run_serve(args, lambda line: print(line, flush=True)))
        if args.command == "completion":
            from .completion import script

            sys.stdout.write(script(args.shell, parser))
            return EXIT_OK
        if args.command == "diff":
            from .diff import DiffTrouble

            try:
                return asyncio.run(_run(args, sys.stdout.buffer))
            except (IMDSError, OSError, DiffTrouble) as exc:
                print(f"aioimds: error: {exc}", file=sys.stderr)
                return EXIT_USAGE
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
    finally:
        restore_logging()
