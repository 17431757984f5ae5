"""The ``aioimds`` argument parser (DESIGN.md section 2).

Global options are declared once, in :data:`GLOBAL_OPTIONS`; :func:`build_parser` adds them
before the sub-command and again to every sub-command that talks to IMDS, so
``aioimds dump --endpoint URL`` works as well as ``aioimds --endpoint URL dump``. The copies
after the sub-command default to "not given" (``argparse.SUPPRESS``), so they override only
what the user typed; ``-v`` counts on both sides (:func:`verbosity`).
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from .._version import __version__
from ..crawl import DEFAULT_CONCURRENCY

__all__ = ["FORMATS", "GLOBAL_OPTIONS", "WATCH_KINDS", "build_parser", "seconds", "subcommands",
           "verbosity"]

FORMATS = ("json", "snapshot", "flat", "tree")
"""``dump --format`` values: nested JSON (default), imds-snapshot/1, path: value lines, tree."""
WATCH_KINDS = ("spot", "rebalance", "maintenance", "lifecycle")
"""``watch`` kinds, in the order of the README's watcher table."""


def seconds(text: str) -> float:
    """An argparse ``type``: a finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, not {text}")
    return value


def _endpoint_mode(text: str) -> str:
    """``--endpoint-mode`` in any case, as the environment variable and the config key."""
    return {"ipv4": "IPv4", "ipv6": "IPv6"}.get(text.lower(), text)


def _positive_int(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, not {text!r}")
    return int(text)


# flags, keyword arguments of add_argument; one place for every global option.
GLOBAL_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--endpoint",), {"metavar": "URL",
                       "help": "IMDS endpoint, http://host[:port] "
                               "(AWS_EC2_METADATA_SERVICE_ENDPOINT)"}),
    (("--endpoint-mode",), {"choices": ["IPv4", "IPv6"], "type": _endpoint_mode,
                            "help": "IPv4 or IPv6 endpoint "
                                    "(AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE)"}),
    (("--timeout",), {"type": float, "metavar": "SECONDS",
                      "help": "seconds per attempt (AWS_METADATA_SERVICE_TIMEOUT, default 1)"}),
    (("--attempts",), {"type": int, "metavar": "N",
                       "help": "attempts per request (AWS_METADATA_SERVICE_NUM_ATTEMPTS, "
                               "default 3)"}),
    (("--wait",), {"type": seconds, "metavar": "SECONDS",
                   "help": "first wait up to SECONDS for IMDS to answer (boot scripts); "
                           "fails listing what each poll saw"}),
    (("--profile",), {"metavar": "NAME",
                      "help": "profile of the AWS config file to read (AWS_PROFILE)"}),
    (("--emulator",), {"action": "store_true",
                       "help": "run against the embedded emulator with the bundled default "
                               "tree (reads no config file; ignores "
                               "AWS_EC2_METADATA_DISABLED)"}),
    (("-v", "--verbose"), {"action": "count",
                           "help": "log to stderr: -v which endpoint and why, token or IMDSv1, "
                                   "a dump's summary; -vv each retry. Secrets are never logged"}),
]


def _add_globals(parser: argparse.ArgumentParser, *, after: bool) -> None:
    group = parser.add_argument_group("global options (also accepted before the command)"
                                      if after else "global options")
    for flags, kwargs in GLOBAL_OPTIONS:
        kw = dict(kwargs)
        if after:
            kw["default"] = argparse.SUPPRESS
            if kw.get("action") == "count":
                kw["dest"] = "verbose_after"  # a sub-parser's count starts again from zero
        elif kw.get("action") == "count":
            kw["default"] = 0
        group.add_argument(*flags, **kw)


def verbosity(args: argparse.Namespace) -> int:
    """How many ``-v`` were given, before and after the sub-command."""
    return int(getattr(args, "verbose", 0) or 0) + int(getattr(args, "verbose_after", 0) or 0)


def build_parser() -> argparse.ArgumentParser:
    """The whole ``aioimds`` parser, sub-commands included."""
    p = argparse.ArgumentParser(
        prog="aioimds",
        description="asyncio client for the EC2 Instance Metadata Service (IMDS).",
        epilog="PATH is relative to latest/ (meta-data/placement/region). Each global option "
               "has its AWS environment variable; the option wins.")
    p.add_argument("--version", action="version", version=f"aioimds {__version__}")
    _add_globals(p, after=False)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, *, globals_: bool = True) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help, description=help)
        if globals_:
            _add_globals(cmd, after=True)
        return cmd

    get = command("get", "print one leaf's body, bytes as served")
    get.add_argument("path", metavar="PATH",
                     help="leaf path relative to latest/, e.g. meta-data/placement/region")
    get.add_argument("-o", "--output", metavar="FILE", help="write the body to FILE")
    get.add_argument("--raw", action="store_true",
                     help="print the body exactly as served, even binary bytes on a terminal")

    ls = command("ls", "print one listing, one entry a line, as served")
    ls.add_argument("path", metavar="PATH", nargs="?", default="",
                    help="listing path relative to latest/ (default: latest/ itself)")

    dump = command("dump", "crawl latest/ (or the sub-tree PATH) and print it")
    dump.add_argument("path", metavar="PATH", nargs="?", default="",
                      help="listing to start from, relative to latest/ (default: all of it)")
    dump.add_argument("-f", "--format", choices=FORMATS, default="json",
                      help="json: nested view (default); snapshot: imds-snapshot/1; "
                           "flat: path: value lines; tree: an indented tree for people")
    dump.add_argument("-o", "--output", metavar="FILE",
                      help="write to FILE instead of stdout (checked before the crawl; "
                           "mode 0600 with --include-secrets)")
    dump.add_argument("--concurrency", type=_positive_int, default=DEFAULT_CONCURRENCY,
                      metavar="N", help=f"requests in flight (default {DEFAULT_CONCURRENCY})")
    dump.add_argument("--include-secrets", action="store_true",
                      help="keep SecretAccessKey and Token in credential documents")
    dump.add_argument("--partial", action="store_true",
                      help="on failures, still write what succeeded (the exit status is 1)")

    serve = command("serve", "run the IMDS emulator until SIGINT/SIGTERM", globals_=False)
    _add_serve(serve)

    doctor = command("doctor", "diagnose reaching IMDS: configuration, environment, probes; "
                               "exit 0 healthy, 1 not")
    doctor.add_argument("-f", "--format", choices=("text", "json"), default="text",
                        help="text for people (default) or json for machines")

    watch = command("watch", "print each new notice as one JSON line (until SIGTERM)")
    watch.add_argument("kind", choices=WATCH_KINDS,
                       help="spot: interruption notice; rebalance: recommendation; "
                            "maintenance: scheduled events; lifecycle: Auto Scaling target "
                            "lifecycle state")
    watch.add_argument("--interval", type=seconds, metavar="S",
                       help="seconds between polls (default: 5, maintenance 60)")
    watch.add_argument("--exec", metavar="CMD", dest="exec_cmd",
                       help="run CMD (with sh -c) for each notice, the notice's JSON in "
                            "AIOIMDS_NOTICE and on stdin")
    watch.add_argument("--once", action="store_true", help="exit 0 after the first notice")

    diff = command("diff", "compare two snapshots, or one with a live endpoint; exit 0 same, "
                           "1 differ, 2 trouble")
    diff.add_argument("a", metavar="A", help="snapshot file, - (stdin), imds (the configured "
                                             "endpoint) or http://host:port (an endpoint)")
    diff.add_argument("b", metavar="B", help="the same kinds as A")
    diff.add_argument("--include-secrets", action="store_true",
                      help="compare and print SecretAccessKey and Token too")

    completion = command("completion", "print a shell completion script "
                                       "(eval \"$(aioimds completion bash)\")", globals_=False)
    completion.add_argument("shell", choices=("bash", "zsh"))
    return p


def _add_serve(parser: argparse.ArgumentParser) -> None:
    from ..emulator.serve import add_serve_arguments

    add_serve_arguments(parser)


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The sub-command parsers of ``parser`` by name (for shell completion)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            choices: dict[str, argparse.ArgumentParser] = action.choices
            return dict(choices)
    return {}
