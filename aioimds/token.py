"""The IMDSv2 token session: one cached token, refreshed single-flight under an asyncio.Lock.

https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html

The token is fetched with ``PUT /latest/api/token`` by the fetch coroutine the client hands in.
It is refreshed :func:`refresh_margin` seconds before it expires. Any number of coroutines that
find no valid token wait on one lock; the first one PUTs and the others re-check and reuse its
token. A waiter that is cancelled leaves the lock free and the cached token untouched: the token
is stored in one assignment, after the PUT succeeded.

IMDSv1 fallback, as the AWS SDKs do it: when the PUT answers 403, 404 or 405, or gets no answer
within the timeout (a hop limit of 1 inside a container), requests go without a token for
:data:`V1_FALLBACK_SECONDS`; the next request after that tries the PUT again. With IMDSv1
disabled the same cases raise :class:`~aioimds.IMDSTokenError` (or its timeout subclass) instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from . import clock
from .errors import IMDSTokenError, IMDSTokenTimeoutError
from .wire import REDACTED

__all__ = [
    "HOP_LIMIT_ADVICE",
    "TOKEN_REFRESH_MARGIN",
    "V1_FALLBACK_SECONDS",
    "TokenSession",
    "refresh_margin",
]

_log = logging.getLogger("aioimds")

TOKEN_REFRESH_MARGIN = 60.0
"""Seconds before expiry at which the token is refreshed (at most a quarter of the TTL)."""
V1_FALLBACK_SECONDS = 300.0
"""Seconds the IMDSv1 fallback decision sticks before the token PUT is tried again."""
FALLBACK_STATUSES = frozenset({403, 404, 405})
"""Token PUT statuses that mean "this IMDS does not do tokens": fall back to IMDSv1."""
HOP_LIMIT_ADVICE = (
    "the token PUT got no answer; inside a container the usual cause is the instance's "
    "hop limit of 1: raise it with 'aws ec2 modify-instance-metadata-options "
    "--instance-id ID --http-put-response-hop-limit 2'"
)
"""What a token timeout error tells the user to do."""

TokenFetch = Callable[[int], Awaitable[tuple[str, int]]]
"""``fetch(ttl_seconds) -> (token, granted_ttl_seconds)``; raises IMDSError subclasses."""


def refresh_margin(ttl: float) -> float:
    """Seconds before expiry to refresh a token of ``ttl`` seconds:
    :data:`TOKEN_REFRESH_MARGIN`, or a quarter of the TTL when that is shorter."""
    return min(TOKEN_REFRESH_MARGIN, ttl / 4)


class TokenSession:
    """The cached token of one client.

    Args:
        fetch: the coroutine function that PUTs for a token (see :data:`TokenFetch`).
        ttl: seconds asked for; the TTL the server echoes wins.
        v1_allowed: whether to fall back to IMDSv1 (token-less requests).
        clock: monotonic clock in seconds (injectable for tests).
    """

    def __init__(
        self,
        fetch: TokenFetch,
        *,
        ttl: int,
        v1_allowed: bool = True,
        clock: Callable[[], float] = clock.now,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._v1_allowed = v1_allowed
        self._clock = clock
        self._lock = asyncio.Lock()
        self._token: tuple[str, float] | None = None  # (value, refresh-at)
        self._v1_until = 0.0
        self.fallback_reason: IMDSTokenError | None = None
        """The token PUT's error that started the current IMDSv1 fallback."""
        self.puts = 0
        """How many token PUTs this session started."""

    def __repr__(self) -> str:
        state = "v1" if self._in_v1() else ("valid" if self._valid() else "none")
        return f"TokenSession(token={REDACTED}, state={state}, puts={self.puts})"

    def _valid(self) -> str | None:
        tok = self._token
        if tok is not None and self._clock() < tok[1]:
            return tok[0]
        return None

    def _in_v1(self) -> bool:
        return self._clock() < self._v1_until

    async def get(self) -> str | None:
        """A valid token, or ``None`` while falling back to IMDSv1.

        Raises: :class:`~aioimds.IMDSTokenError` (400 on the PUT, or 403/404/405 with IMDSv1
        disabled), :class:`~aioimds.IMDSTokenTimeoutError` (no answer, IMDSv1 disabled), or the
        connection errors of the PUT after its retries.
        """
        value = self._valid()
        if value is not None:
            return value
        if self._in_v1():
            return None
        async with self._lock:
            value = self._valid()
            if value is not None:
                return value
            if self._in_v1():
                return None
            return await self._refresh()

    async def _refresh(self) -> str | None:
        self.puts += 1
        try:
            value, granted = await self._fetch(self._ttl)
        except IMDSTokenError as exc:
            fallback = isinstance(exc, TimeoutError) or exc.status in FALLBACK_STATUSES
            if not fallback:
                raise
            if not self._v1_allowed:
                if isinstance(exc, TimeoutError):
                    raise IMDSTokenTimeoutError(
                        f"{HOP_LIMIT_ADVICE}; IMDSv1 fallback is disabled", path=exc.path
                    ) from exc
                raise IMDSTokenError(
                    f"the token PUT answered {exc.status} and IMDSv1 fallback is disabled",
                    path=exc.path, status=exc.status,
                ) from exc
            _log.info("token PUT failed (%s); using IMDSv1 for %.0f s",
                      exc.message, V1_FALLBACK_SECONDS)
            self._v1_until = self._clock() + V1_FALLBACK_SECONDS
            self.fallback_reason = exc
            return None
        self._token = (value, self._clock() + granted - refresh_margin(granted))
        return value

    def invalidate(self, token: str | None) -> None:
        """Forget ``token`` (the service answered 401 to it); a newer token is kept."""
        if token is None:
            self._v1_until = 0.0
        elif self._token is not None and self._token[0] == token:
            self._token = None

    @property
    def using_v1(self) -> bool:
        """Whether requests currently go without a token (IMDSv1 fallback)."""
        return self._in_v1()
