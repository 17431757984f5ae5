"""The IMDSv2 token session: one cached token, refreshed single-flight under an asyncio.Lock,
and what a token PUT's answer means (:func:`token_from_answer`, :meth:`TokenSession.get`).

https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html

The token is fetched with ``PUT /latest/api/token`` by the coroutine the client hands in, which
sends it through the client's request loop with the budget of the request that needs it. It is
refreshed :func:`refresh_margin` seconds before it expires. Any number of coroutines that find
no valid token wait on one lock; the first one PUTs and the others re-check and reuse its token.
A waiter that is cancelled leaves the lock free and the cached token untouched: the token is
stored in one assignment, after the PUT succeeded.

The granted TTL (``X-aws-ec2-metadata-token-ttl-seconds`` echoed by the service) wins over the
TTL asked for. An echoed ``0`` means the token serves the request it was fetched for and is not
kept, so every call PUTs again (as the AWS SDK for Go v2 tests it). A missing echo, or one that
is not a decimal integer in 1..21600, is ignored and the TTL asked for is kept (as botocore,
which never reads the echo; the Go SDK fails the PUT instead).

What the PUT's final outcome (after its retries) means, as the AWS SDKs do it:

| PUT outcome after its retries                        | IMDSv1 allowed        | IMDSv1 disabled   |
|------------------------------------------------------|-----------------------|-------------------|
| 200 with a token                                     | token                 | token             |
| 403, 404, 405 (no IMDSv2 here)                       | IMDSv1                | IMDSTokenError    |
| 408, 429, 5xx still                                  | IMDSv1                | IMDSTokenError    |
| no answer: timed out (a hop limit of 1), dropped     | IMDSv1                | IMDSTokenError    |
|                                                      |                       | (timeout: hop     |
|                                                      |                       | limit advice)     |
| 400, 401, any other status; not a token              | IMDSTokenError        | IMDSTokenError    |
| the endpoint never answered anything (dead endpoint) | IMDSUnreachableError  | same              |

IMDSv1 lasts :data:`V1_FALLBACK_SECONDS`; a token-less request answered 401 ends it at once
(the client then PUTs again, once). When the fallback came from a PUT that got no answer and a
token-less GET is answered 401, that is the hop-limit case: the client raises
:class:`~aioimds.IMDSTokenTimeoutError` with :data:`HOP_LIMIT_ADVICE`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from . import clock
from .errors import (
    IMDSConnectionError,
    IMDSError,
    IMDSTokenError,
    IMDSTokenTimeoutError,
    IMDSUnreachableError,
)
from .retry import FALLBACK_STATUSES, RETRY_STATUSES
from .wire import REDACTED, TOKEN_PATH

if TYPE_CHECKING:
    from .budget import Tries

__all__ = [
    "HOP_LIMIT_ADVICE",
    "MAX_TOKEN_LENGTH",
    "TOKEN_REFRESH_MARGIN",
    "V1_FALLBACK_SECONDS",
    "TokenSession",
    "refresh_margin",
    "token_from_answer",
]

_log = logging.getLogger("aioimds")

TOKEN_REFRESH_MARGIN = 60.0
"""Seconds before expiry at which the token is refreshed (at most a quarter of the TTL)."""
V1_FALLBACK_SECONDS = 300.0
"""Seconds the IMDSv1 fallback decision sticks before the token PUT is tried again."""
MAX_TOKEN_TTL = 21600
"""The largest TTL the service grants (seconds); a larger echo is not believed."""
MAX_TOKEN_LENGTH = 4096
"""Longest token accepted, in characters (real tokens are 56)."""
HOP_LIMIT_ADVICE = (
    "the token PUT got no answer; inside a container the usual cause is the instance's "
    "hop limit of 1: raise it with 'aws ec2 modify-instance-metadata-options "
    "--instance-id ID --http-put-response-hop-limit 2'"
)
"""What a token timeout error tells the user to do."""

TokenFetch = Callable[[int, "Tries | None"], Awaitable[tuple[str, int]]]
"""``fetch(ttl_seconds, tries) -> (token, granted_ttl_seconds)``: the PUT with the budget of the
request that needs the token; raises :func:`token_from_answer`'s errors, or the request loop's
for no answer."""


def refresh_margin(ttl: float) -> float:
    """Seconds before expiry to refresh a token of ``ttl`` seconds:
    :data:`TOKEN_REFRESH_MARGIN`, or a quarter of the TTL when that is shorter."""
    return min(TOKEN_REFRESH_MARGIN, ttl / 4)


def token_from_answer(status: int, body: bytes, ttl: str | None, asked: int) -> tuple[str, int]:
    """The token and granted TTL (seconds; 0: use once) of a token PUT's final answer.

    Raises: :class:`~aioimds.IMDSTokenError` with ``status`` for any status but 200 (the
    module's table says which of them fall back to IMDSv1), and for a 200 whose body is not a
    token (empty, over :data:`MAX_TOKEN_LENGTH`, anything but printable ASCII).
    """
    if status != 200:
        if status == 400:
            why = "this endpoint is not an IMDS or rejected the token request (400)"
        elif status in RETRY_STATUSES:
            why = f"the token PUT answered {status} on every attempt"
        else:
            why = f"the token PUT answered {status}"
        raise IMDSTokenError(why, path=TOKEN_PATH, status=status)
    try:
        token = body.decode("ascii").strip()
    except UnicodeDecodeError:
        token = ""
    if not token or len(token) > MAX_TOKEN_LENGTH or not all("!" <= c <= "~" for c in token):
        raise IMDSTokenError("the token PUT answered 200 with something that is not a token",
                             path=TOKEN_PATH, status=200)
    granted = asked
    echo = (ttl or "").strip()
    if echo.isascii() and echo.isdigit() and len(echo) <= 6 and int(echo) <= MAX_TOKEN_TTL:
        granted = int(echo)
    return token, granted


def _falls_back(exc: IMDSError) -> bool:
    """Whether the PUT's final error means "use IMDSv1" (where that is allowed)."""
    if isinstance(exc, IMDSUnreachableError):
        return False  # nothing answers at all: a token-less GET would not either
    if isinstance(exc, (TimeoutError, IMDSConnectionError)):
        return True
    if isinstance(exc, IMDSTokenError):
        return exc.status in FALLBACK_STATUSES or exc.status in RETRY_STATUSES
    return False


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
        self.fallback_reason: IMDSError | None = None
        """The token PUT's error that started the current IMDSv1 fallback."""
        self._unannounced: IMDSError | None = None  # a fallback no token-less answer confirmed
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

    async def get(self, tries: Tries | None = None) -> str | None:
        """A valid token, or ``None`` while falling back to IMDSv1. ``tries``: the budget of
        the request that needs it, handed to the PUT.

        Raises: :class:`~aioimds.IMDSTokenError` (the module's table),
        :class:`~aioimds.IMDSTokenTimeoutError` (no answer, IMDSv1 disabled),
        :class:`~aioimds.IMDSUnreachableError` (the endpoint never answered).
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
            return await self._refresh(tries)

    async def _refresh(self, tries: Tries | None) -> str | None:
        self.puts += 1
        try:
            value, granted = await self._fetch(self._ttl, tries)
        except IMDSError as exc:
            if not _falls_back(exc):
                raise
            if not self._v1_allowed:
                raise _strict_error(exc) from exc
            # Warned once a token-less request is answered (confirm_v1): a 401 ends the
            # fallback at once and its error says why, so "using IMDSv1" would be untrue.
            _log.debug("token PUT failed (%s); trying IMDSv1", exc.message)
            self._unannounced = exc
            self._v1_until = self._clock() + V1_FALLBACK_SECONDS
            self.fallback_reason = exc
            return None
        if granted > 0:
            self._token = (value, self._clock() + granted - refresh_margin(granted))
        else:
            self._token = None  # granted TTL 0: this request only
        return value

    def confirm_v1(self) -> None:
        """A token-less request was answered (not 401): the IMDSv1 fallback works. Logs the
        warning of the fallback decision, once per decision."""
        exc, self._unannounced = self._unannounced, None
        if exc is not None and self._in_v1():
            _log.warning("token PUT failed (%s); using IMDSv1 for %.0f s",
                         exc.message, V1_FALLBACK_SECONDS)

    def invalidate(self, token: str | None) -> None:
        """Forget ``token`` (the service answered 401 to it); a newer token is kept. ``None``
        (a token-less request answered 401) ends the IMDSv1 fallback."""
        if token is None:
            self._unannounced = None
            self._v1_until = 0.0
        elif self._token is not None and self._token[0] == token:
            self._token = None

    @property
    def using_v1(self) -> bool:
        """Whether requests currently go without a token (IMDSv1 fallback)."""
        return self._in_v1()


def _strict_error(exc: IMDSError) -> IMDSTokenError:
    """The error for a PUT that failed with IMDSv1 fallback disabled."""
    if isinstance(exc, TimeoutError):
        return IMDSTokenTimeoutError(f"{HOP_LIMIT_ADVICE}; IMDSv1 fallback is disabled",
                                     path=exc.path or TOKEN_PATH)
    if exc.status is not None:
        return IMDSTokenError(f"{exc.message}, and IMDSv1 fallback is disabled",
                              path=exc.path or TOKEN_PATH, status=exc.status)
    return IMDSTokenError(f"the token PUT failed ({exc.message}) and IMDSv1 fallback is "
                          "disabled", path=exc.path or TOKEN_PATH)
