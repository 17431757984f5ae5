"""Role credentials from instance metadata, cached and refreshed ahead of expiry.

Where they come from (EC2 user guide, "Retrieve security credentials from instance metadata"):
the role name is the entry of the ``meta-data/iam/security-credentials/`` listing (never taken
from the instance profile ARN, whose name can differ from the role's); the credentials document
is read from ``meta-data/iam/security-credentials-extended/ROLE`` first, and from the legacy
``meta-data/iam/security-credentials/ROLE`` only when that answers 404. A document whose
``Code`` is not ``Success`` is an error.

When they are refreshed: :data:`CREDENTIALS_REFRESH_MARGIN` before ``Expiration``, by one
request flight however many coroutines ask at once (an ``asyncio.Lock``, re-checked inside).
Inside the margin the cached credentials are still valid, so callers get them at once and the
refresh runs in a background task; only a caller with nothing valid cached awaits the fetch.
Nothing here blocks the event loop, and nothing writes credentials into ``os.environ``: hold
the provider (or hand :meth:`CredentialsProvider.botocore_metadata` to an SDK) rather than
copying keys that stop working at their ``expiration``.

Static stability (as the AWS SDKs do it: aws-sdk-js-v3 #3575, smithy-rs PR #2258, botocore
PR #2664): when IMDS cannot be read (an error after the client's retries), or serves
credentials that have already expired, the last good credentials are kept and IMDS is asked
again :data:`CREDENTIALS_RETRY_INTERVAL` plus a random jitter of up to
:data:`CREDENTIALS_RETRY_JITTER` later (5-10 minutes). Credentials served past their
``Expiration`` are *extended*: their ``expiration`` becomes the time of that next try and
``original_expiration`` keeps the served one (AWS keeps accepting instance credentials while
IMDS cannot rotate them). Credentials that IMDS serves already expired, with nothing better
cached, are returned extended the same way. Each extension logs one warning (never a secret).
Valid cached keys are never replaced by expired ones. With nothing cached, a failure is raised.

Handing them to the AWS SDKs: :mod:`aioimds.aiobotocore_credentials` and
:mod:`aioimds.botocore_credentials` put a provider reading them through this class into the
session's credential chain (``add_instance_role(session, ...)``); ``botocore_metadata`` is the
``refresh_using`` of botocore's ``RefreshableCredentials`` for other uses.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from types import TracebackType

from ..catalogue import CREDENTIALS, CREDENTIALS_EXTENDED
from ..errors import IMDSCredentialsError, IMDSError, IMDSNotFoundError
from ..paths import request_path
from ..wire import CREDENTIALS_ROTATION_LEAD, REDACTED
from . import _fields as f
from ._fetch import Source, optional_text

__all__ = [
    "CREDENTIALS_MIN_REFRESH_INTERVAL",
    "CREDENTIALS_REFRESH_MARGIN",
    "CREDENTIALS_RETRY_INTERVAL",
    "CREDENTIALS_RETRY_JITTER",
    "CredentialsProvider",
    "RoleCredentials",
    "as_botocore_metadata",
    "parse_role_credentials",
]

_log = logging.getLogger("aioimds.credentials")

CREDENTIALS_REFRESH_MARGIN = timedelta(seconds=CREDENTIALS_ROTATION_LEAD)
"""Refresh this long before ``Expiration`` (5 minutes): AWS makes new role credentials
available at least that long before the old ones expire
(:data:`aioimds.wire.CREDENTIALS_ROTATION_LEAD`, EC2 user guide)."""
CREDENTIALS_RETRY_INTERVAL = timedelta(minutes=5)
"""After a failed refresh, the next try waits this long plus a jitter of up to
:data:`CREDENTIALS_RETRY_JITTER`: the 5-10 minutes the AWS SDKs use for static stability
(aws-sdk-js-v3 #3575, smithy-rs PR #2258), so a fleet does not hammer a failing IMDS."""
CREDENTIALS_RETRY_JITTER = timedelta(minutes=5)
"""The largest random addition to :data:`CREDENTIALS_RETRY_INTERVAL` (uniform), so instances
that failed together do not retry together."""
CREDENTIALS_MIN_REFRESH_INTERVAL = timedelta(seconds=30)
"""Successful refreshes are at least this far apart: IMDS may serve credentials that are
already inside the refresh margin (before AWS has rotated them), and reading them again on
every call would only add load."""


@dataclass(frozen=True, repr=False)
class RoleCredentials:
    """Temporary credentials of the instance's IAM role.

    ``expiration`` and ``last_updated`` are UTC datetimes; ``account_id`` comes from the
    extended document (``None`` from the legacy one). ``original_expiration`` is the
    ``Expiration`` IMDS served when static stability extended ``expiration`` past it (see the
    module docstring), ``None`` otherwise. ``repr()`` and ``str()`` never show
    ``secret_access_key`` or ``token``.
    """

    access_key_id: str
    secret_access_key: str
    token: str
    expiration: datetime
    role_name: str
    last_updated: datetime | None = None
    account_id: str | None = None
    original_expiration: datetime | None = None

    @property
    def extended(self) -> bool:
        """Whether ``expiration`` was extended past the served one (static stability)."""
        return self.original_expiration is not None

    @property
    def served_expiration(self) -> datetime:
        """The ``Expiration`` IMDS served (``expiration`` unless extended)."""
        return self.original_expiration or self.expiration

    def __repr__(self) -> str:
        extended = (f", extended from {self.original_expiration.isoformat()!r}"
                    if self.original_expiration is not None else "")
        return (f"RoleCredentials(role_name={self.role_name!r}, "
                f"access_key_id={self.access_key_id!r}, secret_access_key={REDACTED}, "
                f"token={REDACTED}, expiration={self.expiration.isoformat()!r}{extended})")

    __str__ = __repr__


def parse_role_credentials(text: str, path: str, role_name: str) -> RoleCredentials:
    """Parse a role credentials document (``Code``, ``AccessKeyId``, ``SecretAccessKey``,
    ``Token``, ``Expiration``, ``LastUpdated``, and ``AccountId`` when extended).

    Raises: :class:`~aioimds.IMDSCredentialsError` naming ``path`` when ``Code`` is not
    ``Success``; :class:`~aioimds.IMDSResponseError` naming ``path`` (and a field, never a
    value) when the document is malformed.
    """
    doc = f.json_object(text, path, "the role credentials document")
    code = f.req_str(doc, "Code", path)
    if code != "Success":
        raise IMDSCredentialsError(f"the role credentials document has Code {code!r}, "
                                   "not 'Success'", path=path, status=200)
    return RoleCredentials(
        access_key_id=f.req_str(doc, "AccessKeyId", path),
        secret_access_key=f.req_str(doc, "SecretAccessKey", path),
        token=f.req_str(doc, "Token", path),
        expiration=f.req_time(doc, "Expiration", path),
        role_name=role_name,
        last_updated=f.opt_time(doc, "LastUpdated", path),
        account_id=f.opt_str(doc, "AccountId", path),
    )


def as_botocore_metadata(creds: RoleCredentials) -> dict[str, str]:
    """The dict botocore's and aiobotocore's ``RefreshableCredentials.create_from_metadata``
    (and their ``refresh_using``) expect: ``access_key``, ``secret_key``, ``token`` and
    ``expiry_time`` (ISO 8601 with offset)."""
    return {
        "access_key": creds.access_key_id,
        "secret_key": creds.secret_access_key,
        "token": creds.token,
        "expiry_time": creds.expiration.isoformat(),
    }


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class CredentialsProvider:
    """The instance role's credentials, cached, refreshed ahead of expiry, single-flight.

    Args:
        imds: an open :class:`~aioimds.IMDSClient` (anything with its ``get`` and ``list``).
        clock: returns the current time as an aware UTC datetime (default: the system clock);
            tests inject their own.
        rand: returns a float in ``[0, 1)`` for the retry jitter (default
            :func:`random.random`); tests inject a seeded one.

    ``await provider.get()`` returns cached :class:`RoleCredentials` until
    :data:`CREDENTIALS_REFRESH_MARGIN` before their expiration; inside the margin it still
    returns them at once and refreshes in a background task (see the module docstring, which
    also gives the static-stability rules). ``async with CredentialsProvider(imds) as p:`` (or
    :meth:`aclose`) cancels a background refresh still running on exit.
    """

    def __init__(self, imds: Source, *, clock: Callable[[], datetime] = _utc_now,
                 rand: Callable[[], float] = random.random) -> None:
        self._imds = imds
        self._clock = clock
        self._rand = rand
        self._lock = asyncio.Lock()
        self._cached: RoleCredentials | None = None
        self._refresh_at: datetime | None = None
        self._background: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        cached = self._cached
        state = ("empty" if cached is None else
                 f"role={cached.role_name!r}, expiration={cached.expiration.isoformat()!r}")
        return f"CredentialsProvider({state})"

    async def __aenter__(self) -> CredentialsProvider:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def get(self) -> RoleCredentials:
        """Credentials to use now: the cached ones while their ``expiration`` is ahead
        (starting a background refresh once it is due), else the result of one fetch shared
        by every concurrent caller.

        Raises: :class:`~aioimds.IMDSCredentialsError` (no IAM role, ``Code`` not
        ``Success``) or another :class:`~aioimds.IMDSError` of the request, only when no
        credentials were ever fetched (see static stability in the module docstring).
        """
        usable = self._usable()
        if usable is not None:
            if self._refresh_due():
                self._refresh_in_background()
            return usable
        async with self._lock:
            usable = self._usable()
            return usable if usable is not None else await self._refresh()

    async def botocore_metadata(self) -> dict[str, str]:
        """:func:`as_botocore_metadata` of :meth:`get`: aiobotocore's ``refresh_using``."""
        return as_botocore_metadata(await self.get())

    async def wait_for_refresh(self) -> None:
        """Wait until a background refresh that is running, if any, has finished (at once
        when none runs). Never raises for the refresh's outcome; cancelling the wait leaves
        the refresh running."""
        task = self._background
        if task is not None and not task.done():
            await asyncio.wait({task})

    async def aclose(self) -> None:
        """Cancel a background refresh still running; the cache is kept."""
        task, self._background = self._background, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})

    def _usable(self) -> RoleCredentials | None:
        """The cached credentials while their (possibly extended) expiration is ahead."""
        cached = self._cached
        return cached if cached is not None and self._clock() < cached.expiration else None

    def _refresh_due(self) -> bool:
        return self._refresh_at is None or self._clock() >= self._refresh_at

    def _refresh_in_background(self) -> None:
        task = self._background
        if task is None or task.done():
            self._background = asyncio.get_running_loop().create_task(
                self._background_refresh(), name="aioimds credentials refresh")

    async def _background_refresh(self) -> None:
        async with self._lock:
            if not self._refresh_due():  # a caller refreshed meanwhile
                return
            try:
                await self._refresh()
            except Exception as exc:  # a closed client, say: keep serving, try later
                self._refresh_at = self._next_try(self._clock())
                _log.warning("refreshing the role credentials in the background failed "
                             "(%s: %s); next try at %s", type(exc).__name__, exc,
                             self._refresh_at.isoformat())

    def _next_try(self, now: datetime) -> datetime:
        return now + CREDENTIALS_RETRY_INTERVAL + CREDENTIALS_RETRY_JITTER * self._rand()

    async def _refresh(self) -> RoleCredentials:
        now, cached = self._clock(), self._cached
        try:
            creds = await self._fetch()
        except IMDSError as exc:
            if cached is None:
                raise
            return self._keep(cached, now, f"refreshing the role credentials failed ({exc})")
        if creds.expiration > now:
            self._cached = creds
            self._refresh_at = max(creds.expiration - CREDENTIALS_REFRESH_MARGIN,
                                   now + CREDENTIALS_MIN_REFRESH_INTERVAL)
            return creds
        served = (f"IMDS served role credentials that expired at "
                  f"{creds.expiration.isoformat()}")
        if cached is not None and cached.served_expiration >= creds.expiration:
            return self._keep(cached, now, served)  # never swap good keys for expired ones
        return self._keep(creds, now, served)

    def _keep(self, creds: RoleCredentials, now: datetime, why: str) -> RoleCredentials:
        """Serve ``creds`` until the next try, extending them if they expire before it."""
        next_try = self._next_try(now)
        if next_try > creds.expiration:
            creds = replace(creds, expiration=next_try,
                            original_expiration=creds.served_expiration)
        self._cached, self._refresh_at = creds, next_try
        _log.warning("%s; serving the credentials of role %s (served expiration %s) until "
                     "the next try at %s", why, creds.role_name,
                     creds.served_expiration.isoformat(), next_try.isoformat())
        return creds

    async def _fetch(self) -> RoleCredentials:
        """One read: the role name, then the extended document or, on 404, the legacy one."""
        try:
            roles = await self._imds.list(CREDENTIALS)
        except IMDSNotFoundError as exc:
            raise IMDSCredentialsError("no IAM role is attached to this instance (404)",
                                       path=exc.path, status=404) from exc
        if not roles:
            raise IMDSCredentialsError("no IAM role is attached to this instance (empty "
                                       "listing)", path=request_path(CREDENTIALS), status=200)
        role = roles[0].rstrip("/")
        for listing in (CREDENTIALS_EXTENDED, CREDENTIALS):
            text = await optional_text(self._imds, listing + role)
            if text is not None:
                return parse_role_credentials(text, request_path(listing + role), role)
        raise IMDSCredentialsError(f"the credentials of role {role!r} are absent (404)",
                                   path=request_path(CREDENTIALS + role), status=404)
