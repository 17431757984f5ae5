"""Role credentials from instance metadata, cached and refreshed ahead of expiry.

Where they come from (EC2 user guide, "Retrieve security credentials from instance metadata"):
the role name is the entry of the ``meta-data/iam/security-credentials/`` listing (never taken
from the instance profile ARN, whose name can differ from the role's); the credentials document
is read from ``meta-data/iam/security-credentials-extended/ROLE`` first, and from the legacy
``meta-data/iam/security-credentials/ROLE`` only when that answers 404. A document whose
``Code`` is not ``Success`` is an error.

When they are refreshed: :data:`CREDENTIALS_REFRESH_MARGIN` before ``Expiration``, by one
request flight however many coroutines ask at once (an ``asyncio.Lock``, re-checked inside).

Static stability: when a refresh fails while the cached credentials are still valid (before
their ``Expiration``), they keep being served, a warning is logged (never a secret), and the
refresh is tried again :data:`CREDENTIALS_RETRY_INTERVAL` later. Without valid credentials the
failure is raised.

Handing them to aiobotocore (``AioRefreshableCredentials`` refreshes by awaiting
``refresh_using``, which must return :func:`as_botocore_metadata`'s dict)::

    from aiobotocore.credentials import AioRefreshableCredentials
    from aiobotocore.session import get_session

    provider = CredentialsProvider(imds)
    creds = AioRefreshableCredentials.create_from_metadata(
        metadata=await provider.botocore_metadata(),
        refresh_using=provider.botocore_metadata,
        method="aioimds",
    )
    session = get_session()
    session._credentials = creds  # or put a credential provider first in the session's chain,
                                  # as examples/s3_with_instance_credentials.py does
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from ..catalogue import CREDENTIALS, CREDENTIALS_EXTENDED
from ..errors import IMDSCredentialsError, IMDSError, IMDSNotFoundError
from ..paths import request_path
from ..wire import CREDENTIALS_ROTATION_LEAD, REDACTED
from . import _fields as f
from ._fetch import Source, optional_text

__all__ = [
    "CREDENTIALS_REFRESH_MARGIN",
    "CREDENTIALS_RETRY_INTERVAL",
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
CREDENTIALS_RETRY_INTERVAL = timedelta(seconds=30)
"""After a failed refresh, with valid credentials still cached, wait this long before the next
try: about ten tries fit in the refresh margin, few enough not to add to a throttled IMDS."""



@dataclass(frozen=True, repr=False)
class RoleCredentials:
    """Temporary credentials of the instance's IAM role.

    ``expiration`` and ``last_updated`` are UTC datetimes; ``account_id`` comes from the
    extended document (``None`` from the legacy one). ``repr()`` and ``str()`` never show
    ``secret_access_key`` or ``token``.
    """

    access_key_id: str
    secret_access_key: str
    token: str
    expiration: datetime
    role_name: str
    last_updated: datetime | None = None
    account_id: str | None = None

    def __repr__(self) -> str:
        return (f"RoleCredentials(role_name={self.role_name!r}, "
                f"access_key_id={self.access_key_id!r}, secret_access_key={REDACTED}, "
                f"token={REDACTED}, expiration={self.expiration.isoformat()!r})")

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

    ``await provider.get()`` returns cached :class:`RoleCredentials` until
    :data:`CREDENTIALS_REFRESH_MARGIN` before their expiration, then fetches new ones; see the
    module docstring for the static-stability rule.
    """

    def __init__(self, imds: Source, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self._imds = imds
        self._clock = clock
        self._lock = asyncio.Lock()
        self._cached: RoleCredentials | None = None
        self._refresh_at: datetime | None = None

    def __repr__(self) -> str:
        cached = self._cached
        state = ("empty" if cached is None else
                 f"role={cached.role_name!r}, expiration={cached.expiration.isoformat()!r}")
        return f"CredentialsProvider({state})"

    async def get(self) -> RoleCredentials:
        """Valid role credentials, fetched only when none are cached or the cached ones are
        due for refresh (one fetch for any number of concurrent callers).

        Raises: :class:`~aioimds.IMDSCredentialsError` (no IAM role, ``Code`` not
        ``Success``, expired credentials) or another :class:`~aioimds.IMDSError` of the
        request, only when no valid credentials are cached.
        """
        fresh = self._fresh()
        if fresh is not None:
            return fresh
        async with self._lock:
            fresh = self._fresh()
            return fresh if fresh is not None else await self._refresh()

    async def botocore_metadata(self) -> dict[str, str]:
        """:func:`as_botocore_metadata` of :meth:`get`: aiobotocore's ``refresh_using``."""
        return as_botocore_metadata(await self.get())

    def _fresh(self) -> RoleCredentials | None:
        """The cached credentials when valid and not yet due for a refresh."""
        now, cached = self._clock(), self._cached
        if cached is None or self._refresh_at is None:
            return None
        return cached if now < self._refresh_at and now < cached.expiration else None

    async def _refresh(self) -> RoleCredentials:
        now, cached = self._clock(), self._cached
        try:
            creds = await self._fetch()
            if creds.expiration <= now:  # an expired answer is a failed refresh too
                raise IMDSCredentialsError("the role credentials served have expired",
                                           path=request_path(CREDENTIALS + creds.role_name))
        except IMDSError as exc:
            if cached is None or now >= cached.expiration:
                raise
            self._refresh_at = now + CREDENTIALS_RETRY_INTERVAL
            _log.warning("refreshing the role credentials failed (%s); serving the cached "
                         "ones of role %s, valid until %s; next try in %d s", exc,
                         cached.role_name, cached.expiration.isoformat(),
                         CREDENTIALS_RETRY_INTERVAL.total_seconds())
            return cached
        self._cached = creds
        self._refresh_at = max(creds.expiration - CREDENTIALS_REFRESH_MARGIN,
                               now + CREDENTIALS_RETRY_INTERVAL)
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
