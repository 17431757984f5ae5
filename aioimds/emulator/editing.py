"""Editing the tree a running emulator serves, and scheduling changes to it.

:class:`TreeEditing` is the part of :class:`~aioimds.emulator.Emulator` that changes what is
served: ``set_leaf``, ``set_response``, ``remove`` (keeping parent listings in step, see
:mod:`aioimds.emulator.listings`), ``set_snapshot``, ``revoke_tokens`` and the ``schedule_*``
methods. When the emulator serves from a background thread (``in_thread``), each runs on the
emulator's loop, so the tree is never changed under a request being answered.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from datetime import datetime
from typing import Concatenate, ParamSpec, TypeVar

from ..snapshot import TEXT_PLAIN, Record, Snapshot
from .default import default_snapshot
from .identity import DOCUMENT, SIGNATURE, IdentitySigner
from .listings import add_to_listings, remove_from_listing
from .resolve import PathResolver
from .schedule import Scheduler, maintenance_event
from .thread import BackgroundLoop
from .tokens import TokenStore

__all__ = ["SnapshotSource", "TreeEditing", "load_snapshot", "on_emulator_loop"]

SnapshotSource = Snapshot | str | os.PathLike[str]
"""What ``snapshot=`` takes: a :class:`Snapshot` or the path of an ``imds-snapshot/1`` file."""

_P = ParamSpec("_P")
_T = TypeVar("_T")
_E = TypeVar("_E", bound="TreeEditing")


def on_emulator_loop(
    method: Callable[Concatenate[_E, _P], _T],
) -> Callable[Concatenate[_E, _P], _T]:
    """Run ``method`` on the emulator's loop thread when it serves from a background thread
    (``in_thread``) and the caller is another thread, and wait for it; else call it directly."""

    @functools.wraps(method)
    def wrapper(self: _E, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        background = self._background
        if background is not None and not background.in_loop_thread:
            return background.call(functools.partial(method, self, *args, **kwargs))
        return method(self, *args, **kwargs)

    return wrapper


def load_snapshot(snapshot: SnapshotSource | None) -> dict[str, Record]:
    """The responses of ``snapshot``: a :class:`Snapshot`, a file's path, or None (the
    default tree). Raises SnapshotFormatError or OSError for a bad file."""
    if snapshot is None:
        return dict(default_snapshot())
    if isinstance(snapshot, (str, os.PathLike)):
        return dict(Snapshot.load(snapshot))
    return dict(snapshot)


class TreeEditing:
    """The editing methods of :class:`~aioimds.emulator.Emulator` (its base class)."""

    _responses: dict[str, Record]
    _resolver: PathResolver
    _signer: IdentitySigner | None
    _store: TokenStore
    _schedule: Scheduler
    _background: BackgroundLoop | None

    @property
    def snapshot(self) -> Snapshot:
        """A copy of the tree being served, edits included."""
        return Snapshot(self._responses)

    @on_emulator_loop
    def set_snapshot(self, snapshot: SnapshotSource) -> None:
        """Serve ``snapshot`` (a :class:`Snapshot` or a file's path) instead, from the next
        request on, exactly as given (listings are not changed)."""
        self._responses = load_snapshot(snapshot)
        self._resolver.invalidate()
        self._sign_identity_document(DOCUMENT)

    @on_emulator_loop
    def set_response(self, path: str, record: Record) -> None:
        """Answer ``path`` (a snapshot key such as ``/latest/meta-data/ami-id``) with ``record``.

        A 200 record is also listed in its parent listing, and each missing directory up to
        ``/latest/`` in its own (:mod:`aioimds.emulator.listings`); an error record leaves the
        listings as they are. Raises ValueError for a path not starting with ``/``."""
        if not path.startswith("/"):
            raise ValueError(f"a path must start with /, not {path!r}")
        self._responses[path] = record
        if record.status == 200:
            add_to_listings(self._responses, path)
        self._resolver.invalidate()
        self._sign_identity_document(path)

    def _sign_identity_document(self, path: str) -> None:
        """Re-sign the identity document after ``path`` changed, when signing is on."""
        if self._signer is not None and path == DOCUMENT:
            self._signer.sign(self._responses)
            if SIGNATURE in self._responses:
                add_to_listings(self._responses, SIGNATURE)

    @on_emulator_loop
    def set_leaf(self, path: str, body: str | bytes, content_type: str = TEXT_PLAIN) -> None:
        """Answer ``path`` with 200 and ``body`` (str is UTF-8 encoded), adding or replacing it
        and listing it in its parent listings (see :meth:`set_response`)."""
        data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        self.set_response(path, Record(body=data, content_type=content_type))

    @on_emulator_loop
    def remove(self, path: str) -> None:
        """Forget ``path``: it answers 404 from now on (no error if it was absent), and its
        entry leaves its parent listing. A directory (``path`` ending with ``/``) goes with
        every path under it."""
        responses = self._responses
        responses.pop(path, None)
        if path.endswith("/"):
            for key in [k for k in responses if k.startswith(path)]:
                del responses[key]
        remove_from_listing(responses, path)
        self._resolver.invalidate()

    @on_emulator_loop
    def revoke_tokens(self) -> None:
        """Revoke every issued token: each one answers 401 from now on."""
        self._store.revoke_all()

    # -- scheduled changes (aioimds.emulator.schedule; pending ones are cancelled by stop) --

    @on_emulator_loop
    def schedule_spot_action(self, in_seconds: float, action: str = "terminate") -> None:
        """Serve a spot interruption notice (``terminate``, ``stop`` or ``hibernate``) at
        ``meta-data/spot/instance-action`` from ``in_seconds`` seconds from now."""
        self._schedule.spot_action(in_seconds, action)

    @on_emulator_loop
    def schedule_rebalance(self, in_seconds: float) -> None:
        """Serve a rebalance recommendation at ``meta-data/events/recommendations/rebalance``
        from ``in_seconds`` seconds from now."""
        self._schedule.rebalance(in_seconds)

    @on_emulator_loop
    def schedule_maintenance_event(
        self, in_seconds: float, code: str = "system-reboot", description: str | None = None,
        *, event_id: str | None = None, not_before: datetime | None = None,
        not_after: datetime | None = None, not_before_deadline: datetime | None = None,
        state: str = "active",
    ) -> str:
        """Add a scheduled event to ``meta-data/events/maintenance/scheduled`` in
        ``in_seconds`` seconds (arguments and defaults as
        :func:`~aioimds.emulator.schedule.maintenance_event`). Returns its ``EventId``."""
        event = maintenance_event(code, description, event_id=event_id, not_before=not_before,
                                  not_after=not_after, not_before_deadline=not_before_deadline,
                                  state=state)
        self._schedule.maintenance_event(in_seconds, event)
        return event["EventId"]

    @on_emulator_loop
    def schedule_lifecycle_state(self, in_seconds: float, state: str) -> None:
        """Set ``meta-data/autoscaling/target-lifecycle-state`` to ``state`` in ``in_seconds``."""
        self._schedule.lifecycle_state(in_seconds, state)

    @on_emulator_loop
    def rotate_credentials(self, every: float | None = None,
                           lifetime: float | None = None) -> None:
        """New role credentials now (and each ``every`` seconds), expiring ``lifetime`` seconds
        later; see :meth:`~aioimds.emulator.schedule.Scheduler.rotate_credentials`."""
        self._schedule.rotate_credentials(every, lifetime)
