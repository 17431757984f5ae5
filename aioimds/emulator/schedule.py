"""Scheduled changes to a running emulator: spot and rebalance notices, maintenance events,
Auto Scaling lifecycle states and role-credential rotation.

A :class:`Scheduler` applies a change at a time from now (``loop.call_later``, the event loop's
monotonic clock) by setting leaves on its emulator, whose ``set_response`` keeps the parent
listings consistent: the first spot notice adds ``instance-action`` to ``meta-data/spot/`` and
``spot/`` to ``meta-data/``, as a real instance starts listing them. The documents follow the
EC2 user guide ("Instance metadata categories", "Spot Instance interruption notices", "EC2
instance rebalance recommendations", "Scheduled events for your instances") and the Auto
Scaling user guide ("Retrieve the target lifecycle state through instance metadata").

:class:`~aioimds.emulator.Emulator` exposes these as ``emu.schedule_spot_action(...)`` and
friends and cancels every pending change in ``stop()``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import secrets
import string
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from .. import catalogue
from ..paths import ROOT, split_entries
from ..snapshot import Record, Snapshot
from ..wire import CREDENTIALS_ROTATION_LEAD, format_event_time

__all__ = [
    "CREDENTIAL_DIRECTORIES",
    "CREDENTIAL_OVERLAP",
    "DEFAULT_CREDENTIAL_LIFETIME",
    "LIFECYCLE_STATE_PATH",
    "MAINTENANCE_NOTICE_LEAD",
    "MAINTENANCE_PATH",
    "MAINTENANCE_WINDOW",
    "REBALANCE_PATH",
    "SPOT_ACTIONS",
    "SPOT_ACTION_PATH",
    "SPOT_NOTICE_LEAD",
    "SPOT_TERMINATION_TIME_PATH",
    "Scheduler",
    "aws_json",
    "iso_time",
    "maintenance_event",
    "rotate_credentials_now",
]

SPOT_ACTION_PATH = ROOT + catalogue.SPOT_ACTION
"""``{"action": ..., "time": ...}``; 404 until a spot interruption notice exists."""
SPOT_TERMINATION_TIME_PATH = ROOT + catalogue.SPOT_TERMINATION_TIME
"""The older item that carries only the time; present when the action is ``terminate``."""
REBALANCE_PATH = ROOT + catalogue.REBALANCE
"""``{"noticeTime": ...}``; 404 until a rebalance recommendation exists."""
MAINTENANCE_PATH = ROOT + catalogue.MAINTENANCE_SCHEDULED
"""A JSON array of the instance's scheduled events (``[]`` when there are none)."""
LIFECYCLE_STATE_PATH = ROOT + catalogue.LIFECYCLE_STATE
"""The Auto Scaling target lifecycle state as text (``InService``, ``Terminated``, ...)."""
CREDENTIAL_DIRECTORIES = (ROOT + catalogue.CREDENTIALS, ROOT + catalogue.CREDENTIALS_EXTENDED)
"""Where :meth:`Scheduler.rotate_credentials` rewrites the documents of every role either
lists; the ``-extended`` document (credentials plus ``AccountId``) only when the tree has it."""

SPOT_ACTIONS = ("terminate", "stop", "hibernate")
"""The ``action`` values of a spot interruption notice."""
SPOT_NOTICE_LEAD = 120.0
"""Seconds from a spot notice to its action: EC2 warns two minutes ahead (hibernation starts
at once, so its notice carries the time of the notice itself)."""
MAINTENANCE_NOTICE_LEAD = timedelta(days=7)
"""Default time from a maintenance event's appearance to its ``NotBefore``: EC2 schedules
events days ahead (a made-up but plausible week)."""
MAINTENANCE_WINDOW = timedelta(hours=2)
"""Default ``NotAfter - NotBefore`` of a scheduled event (made up; pass ``not_after``)."""
CREDENTIAL_OVERLAP = CREDENTIALS_ROTATION_LEAD
"""Seconds old role credentials stay valid after their replacement appears
(:data:`aioimds.wire.CREDENTIALS_ROTATION_LEAD`)."""
DEFAULT_CREDENTIAL_LIFETIME = 21600.0
"""Seconds to ``Expiration`` of credentials rotated once (no ``every``): six hours, what
instance role credentials typically last."""

_KEY_ALPHABET = string.ascii_uppercase + "234567"


class _Target(Protocol):
    """What the scheduler needs of an emulator."""

    @property
    def snapshot(self) -> Snapshot: ...

    def set_response(self, path: str, record: Record) -> None:
        """Answer ``path`` with ``record``, listing it in its parent listings."""


def iso_time(when: datetime) -> str:
    """``2017-09-18T08:22:00Z``: the time format of spot, rebalance and credential documents."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def aws_json(doc: Any) -> str:
    """JSON laid out as IMDS serves its documents: two-space indent, ``"Key" : value``."""
    return json.dumps(doc, indent=2, separators=(",", " : "))


def _check_delay(seconds: float, name: str) -> None:
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, not {seconds!r}")


def _entries(record: Record | None) -> list[str]:
    if record is None or record.status != 200:
        return []
    return split_entries(record.body.decode("utf-8", "replace"))


def _json_body(record: Record | None) -> Any:
    if record is None or record.status != 200:
        return None
    try:
        return json.loads(record.body)
    except ValueError:
        return None


def _new_credentials(now: datetime, lifetime: float) -> dict[str, str]:
    key_id = "ASIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))
    return {
        "LastUpdated": iso_time(now),
        "AccessKeyId": key_id,
        "SecretAccessKey": secrets.token_urlsafe(30)[:40],
        "Token": "aioimds-FAKE-" + secrets.token_urlsafe(96),
        "Expiration": iso_time(now + timedelta(seconds=lifetime)),
    }


def rotate_credentials_now(target: _Target, lifetime: float) -> list[str]:
    """Give every role new credentials expiring ``lifetime`` seconds from now; return the
    paths rewritten. A document that is not a JSON object is left as it is."""
    responses = target.snapshot
    now = datetime.now(timezone.utc)
    fresh: dict[str, dict[str, str]] = {}
    written = []
    roles = dict.fromkeys(r for d in CREDENTIAL_DIRECTORIES for r in _entries(responses.get(d)))
    for role in roles:
        for directory in CREDENTIAL_DIRECTORIES:
            path = directory + role
            doc = _json_body(responses.get(path))
            if not isinstance(doc, dict):
                continue
            doc.update(fresh.setdefault(role, _new_credentials(now, lifetime)))
            target.set_response(path, Record(aws_json(doc).encode("utf-8")))
            written.append(path)
    return written


class Scheduler:
    """Applies changes to an emulator at times from now; :meth:`cancel` drops pending ones.

    Every ``in_seconds`` is seconds from the call (finite, >= 0; 0 applies the change at
    once), measured on the running event loop's monotonic clock. Methods must be called with an
    event loop running (a change is a ``loop.call_later`` timer: no task, nothing to await).
    Raises :class:`ValueError` for a negative or infinite delay or an unknown value.
    """

    def __init__(self, target: _Target) -> None:
        self._target = target
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._ids = itertools.count()
        self._rotation: int | None = None

    @property
    def pending(self) -> int:
        """How many changes are waiting for their time."""
        return len(self._timers)

    def cancel(self) -> None:
        """Cancel every pending change, credential rotation included."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._rotation = None

    def at(self, in_seconds: float, change: Callable[[], object]) -> int:
        """Call ``change()`` in ``in_seconds`` seconds (at once for 0); returns a timer id."""
        _check_delay(in_seconds, "in_seconds")
        key = next(self._ids)
        if in_seconds == 0:
            change()
        else:
            loop = asyncio.get_running_loop()
            self._timers[key] = loop.call_later(in_seconds, self._fire, key, change)
        return key

    def _fire(self, key: int, change: Callable[[], object]) -> None:
        self._timers.pop(key, None)
        change()

    def spot_action(self, in_seconds: float, action: str = "terminate") -> None:
        """A spot interruption notice at ``meta-data/spot/instance-action`` in ``in_seconds``:
        ``{"action": action, "time": <notice time + SPOT_NOTICE_LEAD>}`` (``hibernate``: the
        notice time), and ``spot/termination-time`` when ``action`` is ``terminate``."""
        if action not in SPOT_ACTIONS:
            raise ValueError(f"action must be one of {', '.join(SPOT_ACTIONS)}, not {action!r}")

        def notify() -> None:
            now = datetime.now(timezone.utc)
            when = now if action == "hibernate" else now + timedelta(seconds=SPOT_NOTICE_LEAD)
            doc = {"action": action, "time": iso_time(when)}
            self._target.set_response(SPOT_ACTION_PATH, Record(json.dumps(doc).encode()))
            if action == "terminate":
                self._target.set_response(SPOT_TERMINATION_TIME_PATH,
                                          Record(iso_time(when).encode()))

        self.at(in_seconds, notify)

    def rebalance(self, in_seconds: float) -> None:
        """A rebalance recommendation at ``meta-data/events/recommendations/rebalance`` in
        ``in_seconds``: ``{"noticeTime": <the time it appears>}``."""

        def notify() -> None:
            doc = {"noticeTime": iso_time(datetime.now(timezone.utc))}
            self._target.set_response(REBALANCE_PATH, Record(json.dumps(doc).encode()))

        self.at(in_seconds, notify)

    def maintenance_event(self, in_seconds: float, event: Mapping[str, Any]) -> None:
        """Append ``event`` (a scheduled-event JSON object, see :func:`maintenance_event`) to
        ``meta-data/events/maintenance/scheduled`` in ``in_seconds``; an event with the same
        ``EventId`` is replaced. A body that is not a JSON array is started afresh."""

        def publish() -> None:
            events = _json_body(self._target.snapshot.get(MAINTENANCE_PATH))
            kept = [e for e in events if not (isinstance(e, dict)
                                              and e.get("EventId") == event["EventId"])
                    ] if isinstance(events, list) else []
            body = aws_json([*kept, dict(event)]).encode("utf-8")
            self._target.set_response(MAINTENANCE_PATH, Record(body))

        self.at(in_seconds, publish)

    def lifecycle_state(self, in_seconds: float, state: str) -> None:
        """Set ``meta-data/autoscaling/target-lifecycle-state`` to ``state`` in ``in_seconds``.

        Known states: ``InService``, ``Terminated``, ``Detached``, ``Standby`` and the warm
        pool's ``Warmed:Hibernated``, ``Warmed:Running``, ``Warmed:Stopped``,
        ``Warmed:Terminated``; any one-line text is accepted.
        """
        if not state or "\n" in state or state != state.strip():
            raise ValueError(f"state must be one line of text, not {state!r}")
        self.at(in_seconds, lambda: self._target.set_response(
            LIFECYCLE_STATE_PATH, Record(state.encode("utf-8"))))

    def rotate_credentials(self, every: float | None = None,
                           lifetime: float | None = None) -> None:
        """Give every role new credentials now and, with ``every``, each ``every`` seconds.

        ``Expiration`` is ``lifetime`` seconds after each rotation (default: ``every`` +
        :data:`CREDENTIAL_OVERLAP`, or :data:`DEFAULT_CREDENTIAL_LIFETIME` without ``every``);
        a ``lifetime`` shorter than ``every`` serves expired credentials for a while, on
        purpose. A new call replaces the previous rotation.
        """
        if every is not None and not (math.isfinite(every) and every > 0):
            raise ValueError(f"every must be a finite number of seconds > 0, not {every!r}")
        if lifetime is None:
            lifetime = DEFAULT_CREDENTIAL_LIFETIME if every is None else every + CREDENTIAL_OVERLAP
        _check_delay(lifetime, "lifetime")
        if self._rotation is not None:
            timer = self._timers.pop(self._rotation, None)
            if timer is not None:
                timer.cancel()
            self._rotation = None
        ttl = lifetime

        def rotate() -> None:
            rotate_credentials_now(self._target, ttl)
            if every is not None:
                self._rotation = self.at(every, rotate)

        rotate()


def maintenance_event(
    code: str = "system-reboot",
    description: str | None = None,
    *,
    event_id: str | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    not_before_deadline: datetime | None = None,
    state: str = "active",
) -> dict[str, str]:
    """A scheduled-event object as IMDS lists it under ``events/maintenance/scheduled``.

    Args:
        code: ``instance-reboot``, ``system-reboot``, ``system-maintenance``,
            ``instance-retirement`` or ``instance-stop``.
        description: free text (default: ``"scheduled <code>"``).
        event_id: ``instance-event-`` and 17 hex digits (default: a random one).
        not_before: start of the window (default: now + :data:`MAINTENANCE_NOTICE_LEAD`).
        not_after: end of the window (default: ``not_before`` + :data:`MAINTENANCE_WINDOW`).
        not_before_deadline: latest start it can be rescheduled to; left out when ``None``.
        state: ``active``, ``completed`` or ``canceled``.
    """
    start = not_before or datetime.now(timezone.utc) + MAINTENANCE_NOTICE_LEAD
    event = {
        "NotBefore": format_event_time(start),
        "Code": code,
        "Description": description if description is not None else f"scheduled {code}",
        "EventId": event_id or "instance-event-0" + secrets.token_hex(8),
        "NotAfter": format_event_time(not_after or start + MAINTENANCE_WINDOW),
        "State": state,
    }
    if not_before_deadline is not None:
        event["NotBeforeDeadline"] = format_event_time(not_before_deadline)
    return event
