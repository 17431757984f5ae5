"""The pieces of ``aioimds serve`` (DESIGN.md section 2): its options and its main coroutine.

``cli.py`` owns the parser and the exit codes; this module adds the ``serve`` options to a
parser, builds the :class:`Emulator` they describe, and serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import math
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import IMDSConfigError
from ..wire import MAX_TOKEN_TTL, MIN_TOKEN_TTL
from .faults import Faults, TraceEntry
from .schedule import CREDENTIAL_OVERLAP, SPOT_ACTIONS
from .server import Emulator
from .throttle import SHAPES

__all__ = [
    "add_serve_arguments",
    "emulator_from_args",
    "faults_from_args",
    "request_line",
    "run_serve",
    "schedule_from_args",
]


def _number(
    low: float, high: float | None = None, *, kind: type = float, exclusive: bool = False
) -> Callable[[str], float]:
    """An argparse ``type``: a finite ``kind`` value >= low (> low if exclusive), <= high."""

    def parse(text: str) -> float:
        try:
            value: float = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        above = value > low if exclusive else value >= low
        if not (math.isfinite(value) and above and (high is None or value <= high)):
            bound = f"> {low}" if exclusive else f">= {low}"
            if high is not None:
                bound += f" and <= {high}"
            raise argparse.ArgumentTypeError(f"must be {bound}, not {text}")
        return value

    return parse


def _one_line(text: str) -> str:
    """An argparse ``type``: one line of text without surrounding spaces."""
    if not text or "\n" in text or text != text.strip():
        raise argparse.ArgumentTypeError(f"must be one line of text, not {text!r}")
    return text


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``serve`` options: what to serve, where, and which faults to inject."""
    parser.add_argument("--snapshot", metavar="FILE",
                        help="imds-snapshot/1 file to serve (default: the bundled tree)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=_number(0, 65535, kind=int), default=0,
                        help="TCP port; 0 picks a free one (default: 0)")
    parser.add_argument("--tokens", choices=("required", "optional"), default="required",
                        help="required: IMDSv2 only, every request without a token is 401 (the "
                             "instance setting 'IMDSv2 required'); optional: IMDSv1 too "
                             "(default: required)")
    parser.add_argument("--instance-metadata-tags", choices=("enabled", "disabled"),
                        default="enabled",
                        help="disabled: meta-data/tags/ answers 404 and is not listed, as on an "
                             "instance without tags in metadata (default: enabled)")
    # The global -v may already be accepted after the sub-command: then it is that one.
    with contextlib.suppress(argparse.ArgumentError):
        parser.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                            help="print one line per request to stderr: method, path, status, "
                                 "whether a token was sent (never the token)")
    parser.add_argument("--latency-ms", type=_number(0), default=0.0, metavar="MS",
                        help="milliseconds added before every answer (default: 0)")
    parser.add_argument("--sign-identity", metavar="CERT_FILE",
                        help="sign the identity document with a certificate made at start-up "
                             "and write that certificate (PEM) to CERT_FILE; needs the "
                             "cryptography package (pip install 'aioimds[verify]')")
    faults = parser.add_argument_group("fault options (all off by default)")
    faults.add_argument("--jitter-ms", type=_number(0), default=0.0, metavar="MS",
                        help="extra uniform random 0..MS milliseconds per answer")
    faults.add_argument("--error-rate", type=_number(0, 1), default=0.0, metavar="FRACTION",
                        help="fraction of GET requests answered 500/503")
    faults.add_argument("--throttle-rps", type=_number(0, exclusive=True), metavar="RPS",
                        help="requests per second allowed; the excess is answered 429")
    faults.add_argument("--retry-after", type=_number(0), metavar="SECONDS",
                        help="send Retry-After with each 429 (IMDS sends none)")
    faults.add_argument("--drop-rate", type=_number(0, 1), default=0.0, metavar="FRACTION",
                        help="fraction of requests whose connection is closed without an answer")
    faults.add_argument("--hold-token-put", action="store_true",
                        help="never answer the token PUT (a hop limit of 1 in a container)")
    faults.add_argument("--token-put-status", type=_number(100, 599, kind=int), metavar="STATUS",
                        help="answer every token PUT with this HTTP status")
    faults.add_argument("--max-token-ttl", type=_number(MIN_TOKEN_TTL, MAX_TOKEN_TTL, kind=int),
                        metavar="SECONDS", help="cap the token TTL the server grants")
    faults.add_argument("--revoke-every", type=_number(0, exclusive=True), metavar="SECONDS",
                        help="revoke every token each SECONDS seconds")
    faults.add_argument("--max-connections", type=_number(1, kind=int), metavar="N",
                        help="simultaneous connections; the excess is closed unanswered")
    faults.add_argument("--seed", type=int, help="seed for repeatable random faults")
    _add_throttle_arguments(parser)
    _add_schedule_arguments(parser)


def _throttle_step(text: str) -> tuple[float, float]:
    """An argparse ``type``: ``SECONDS:RPS``, a rate from SECONDS after the first request."""
    at, sep, rps = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"must be SECONDS:RPS, not {text!r}")
    return _number(0)(at), _number(0, exclusive=True)(rps)


def _add_throttle_arguments(parser: argparse.ArgumentParser) -> None:
    shape = parser.add_argument_group(
        "throttle shape (with --throttle-rps; aioimds.emulator.throttle)")
    shape.add_argument("--throttle-shape", choices=SHAPES, default="bucket",
                       help="bucket: a token bucket (default); fixed-window: at most RPS x "
                            "WINDOW requests per window; sliding-window: as many in any "
                            "trailing window")
    shape.add_argument("--throttle-burst", type=_number(1), metavar="REQUESTS",
                       help="the token bucket's size (default: max(1, RPS / 10))")
    shape.add_argument("--throttle-window", type=_number(0, exclusive=True), default=1.0,
                       metavar="SECONDS", help="seconds of a window (default: 1)")
    shape.add_argument("--throttle-drop", action="store_true",
                       help="close refused connections without an answer instead of 429")
    shape.add_argument("--throttle-step", type=_throttle_step, action="append", default=[],
                       metavar="SECONDS:RPS",
                       help="allow RPS from SECONDS after the first request on (repeatable: "
                            "--throttle-step 2:100 --throttle-step 4:200 halves 200 for 2 s)")


def _add_schedule_arguments(parser: argparse.ArgumentParser) -> None:
    later = parser.add_argument_group("scheduled changes (SECONDS counted from start)")
    seconds = _number(0)
    later.add_argument("--spot-action-in", type=seconds, metavar="SECONDS",
                       help="serve a spot interruption notice (spot/instance-action)")
    later.add_argument("--spot-action", choices=SPOT_ACTIONS, default="terminate",
                       help="the notice's action (default: terminate)")
    later.add_argument("--rebalance-in", type=seconds, metavar="SECONDS",
                       help="serve a rebalance recommendation (events/recommendations/rebalance)")
    later.add_argument("--maintenance-in", type=seconds, metavar="SECONDS",
                       help="add a scheduled event (events/maintenance/scheduled)")
    later.add_argument("--maintenance-code", default="system-reboot", metavar="CODE",
                       help="the event's code (default: system-reboot)")
    later.add_argument("--lifecycle-state-in", type=seconds, metavar="SECONDS",
                       help="change autoscaling/target-lifecycle-state")
    later.add_argument("--lifecycle-state", type=_one_line, default="Terminated", metavar="STATE",
                       help="the new target lifecycle state (default: Terminated)")
    later.add_argument("--rotate-credentials-every", type=_number(0, exclusive=True),
                       metavar="SECONDS", help="new role credentials now and every SECONDS")
    later.add_argument("--credentials-lifetime", type=_number(0, exclusive=True),
                       metavar="SECONDS",
                       help="seconds to each credential Expiration "
                       f"(default: every + {CREDENTIAL_OVERLAP:g})")


def schedule_from_args(emulator: Emulator, args: argparse.Namespace) -> None:
    """Schedule on a started ``emulator`` the changes the parsed ``serve`` options ask for."""
    if args.spot_action_in is not None:
        emulator.schedule_spot_action(args.spot_action_in, args.spot_action)
    if args.rebalance_in is not None:
        emulator.schedule_rebalance(args.rebalance_in)
    if args.maintenance_in is not None:
        emulator.schedule_maintenance_event(args.maintenance_in, args.maintenance_code)
    if args.lifecycle_state_in is not None:
        emulator.schedule_lifecycle_state(args.lifecycle_state_in, args.lifecycle_state)
    if args.rotate_credentials_every is not None or args.credentials_lifetime is not None:
        emulator.rotate_credentials(args.rotate_credentials_every, args.credentials_lifetime)


def faults_from_args(args: argparse.Namespace) -> Faults:
    """The :class:`Faults` the parsed ``serve`` options ask for.

    Raises :class:`~aioimds.IMDSConfigError` for a throttle-shape option without
    ``--throttle-rps``.
    """
    shaped = (args.throttle_shape != "bucket" or args.throttle_burst is not None
              or args.throttle_window != 1.0 or args.throttle_drop or args.throttle_step)
    if shaped and args.throttle_rps is None:
        raise IMDSConfigError("the throttle shape options (--throttle-shape, --throttle-burst, "
                              "--throttle-window, --throttle-drop, --throttle-step) need "
                              "--throttle-rps")
    return Faults(
        jitter=args.jitter_ms / 1000,
        error_rate=args.error_rate,
        throttle_rps=args.throttle_rps,
        throttle_shape=args.throttle_shape,
        throttle_burst=args.throttle_burst,
        throttle_window=args.throttle_window,
        throttle_drop=args.throttle_drop,
        throttle_steps=tuple(args.throttle_step),
        retry_after=args.retry_after,
        drop_rate=args.drop_rate,
        hold_token_put=args.hold_token_put,
        token_put_status=args.token_put_status,
        max_token_ttl=args.max_token_ttl,
        revoke_every=args.revoke_every,
        max_connections=args.max_connections,
    )


def request_line(entry: TraceEntry) -> str:
    """The ``serve -v`` line for one request: ``GET /latest/meta-data/ 200 token=yes``.

    The path is the raw request target; the status is ``-`` when the connection was closed
    without an answer; ``token=`` says whether an ``X-aws-ec2-metadata-token`` header was
    sent. The token itself is never printed."""
    status = str(entry.status) if entry.status else "-"
    return f"{entry.method} {entry.path} {status} token={'yes' if entry.token else 'no'}"


def emulator_from_args(
    args: argparse.Namespace, log: Callable[[str], None] | None = None
) -> Emulator:
    """The (not yet started) :class:`Emulator` for the parsed ``serve`` options.

    Its request trace is off (a long-running server would grow it forever); the counts are kept.
    With ``-v`` each request's :func:`request_line` is passed to ``log`` (default: a line on
    stderr).

    Raises :class:`~aioimds.SnapshotFormatError` or :class:`OSError` for a bad
    ``--snapshot`` file.
    """
    emulator = Emulator(
        args.snapshot or None,
        host=args.host,
        port=args.port,
        tokens=args.tokens,
        instance_metadata_tags=args.instance_metadata_tags,
        latency=args.latency_ms / 1000,
        faults=faults_from_args(args),
        seed=args.seed,
        sign_identity=args.sign_identity is not None,
    )
    emulator.counters.trace_enabled = False  # nobody reads it, and it would grow forever
    if getattr(args, "verbose", 0):
        write = log if log is not None else _stderr_line
        emulator.on_request = lambda entry: write(request_line(entry))
    return emulator


def _stderr_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def exposure_warning(host: str) -> str | None:
    """The warning for a ``--host`` that is not a loopback address (``0.0.0.0``, ``::``, an
    interface's address or a name other than ``localhost``), ``None`` for loopback."""
    name = host.strip("[]")
    if name.lower() == "localhost":
        return None
    try:
        if ipaddress.ip_address(name).is_loopback:
            return None
    except ValueError:
        pass  # a host name: it may resolve to anything
    return (f"warning: serving on {host}, not a loopback address: anyone who can reach this "
            "machine gets the emulator's metadata and fake credentials; use --host 127.0.0.1 "
            "unless that is meant")


async def run_serve(
    args: argparse.Namespace, out: Callable[[str], None], log: Callable[[str], None] | None = None
) -> int:
    """Serve until SIGINT or SIGTERM; ``out(url)`` is called once listening, and with ``-v``
    ``log(line)`` once per request (default: stderr). Returns 0.

    Raises :class:`~aioimds.SnapshotFormatError` or :class:`OSError` (bad snapshot
    file, port in use) before serving; the CLI maps them to its exit status.
    """
    emulator = emulator_from_args(args, log)
    warning = exposure_warning(args.host)
    if warning is not None:
        _stderr_line(f"aioimds: {warning}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):
            continue  # Windows or not the main thread: Ctrl+C still ends the loop
        installed.append(sig)
    try:
        async with emulator:
            schedule_from_args(emulator, args)
            if args.sign_identity is not None and emulator.identity_certificate is not None:
                await asyncio.to_thread(Path(args.sign_identity).write_text,
                                        emulator.identity_certificate, "ascii")
            out(emulator.url)
            await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    return 0
