"""One HTTP exchange with IMDS: send, read the body under a size cap, classify the failure.

This is the only module that touches aiohttp's client. It never follows redirects, never uses
proxies from the environment (``trust_env=False``), never decompresses (bodies are returned as
served, and it asks for ``Accept-Encoding: identity``) and sends no ``X-Forwarded-For``. Errors
never carry the token.

Every attempt on the wire is one the request loop decided on: aiohttp's own retry of an
idempotent request after a dropped keep-alive connection (aiohttp 3.10 and later) is switched
off. aiohttp 3.11+ has a session switch for it (``_retry_connection``, the one aiohttp's own
test client turns off); aiohttp 3.10 retries only methods it finds in its
``IDEMPOTENT_METHODS`` set, compared case-sensitively before the request upper-cases the method,
so there the method is passed in lower case; aiohttp 3.9 never retries.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from .errors import IMDSConnectionError, IMDSError, IMDSResponseError, IMDSTimeoutError
from .retry import NoAnswer
from .wire import REDACTED, TOKEN_HEADER, TTL_HEADER

__all__ = ["CONNECT_SHARE", "Answer", "Transport", "no_answer"]

USER_AGENT = "aioimds"
CONNECT_SHARE = 0.9
"""Share of an attempt's timeout the TCP connect may take. Kept below 1 so that a connect that
gets no answer (no host there: not on EC2) is told apart from a request that was sent and never
answered (a held token PUT: the hop limit)."""

_SESSION_RETRY_SWITCH = "_retry_connection" in aiohttp.ClientSession.ATTRS
"""aiohttp >= 3.11: the session attribute that switches its keep-alive retry off."""


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer: status, body bytes as served, mime type, and the headers used:
    ``ttl`` (the granted TTL) is read from PUT answers only, ``retry_after`` from 429s only.

    ``content_type`` is the ``Content-Type`` in lower case without parameters
    (``Text/HTML; charset=utf-8`` is ``text/html``), or ``""`` when the answer had none (or an
    empty one): kept as served, not aiohttp's ``application/octet-stream`` default.
    """

    status: int
    body: bytes
    content_type: str
    ttl: str | None = None
    retry_after: str | None = None


class Transport:
    """Sends single requests over one ``aiohttp.ClientSession`` (keep-alive for its life).

    Args:
        base_url: the endpoint, ``http://host[:port]``.
        timeout: seconds for one attempt: connect, send, and read the whole body.
        max_body: bytes; a larger body raises :class:`~aioimds.IMDSResponseError`.
        connections: the connector's connection limit.
    """

    def __init__(self, base_url: str, *, timeout: float, max_body: int, connections: int):
        self.base_url = base_url
        self._timeout = _timeout(timeout)
        self._max_body = max_body
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections, ttl_dns_cache=None,
                                           enable_cleanup_closed=False),
            trust_env=False,
            auto_decompress=False,
            # Accept-Encoding set, not skipped: aiohttp's per-request skip handling costs
            # about 5 us, and "identity" says what a client that never decompresses accepts.
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
        )
        if _SESSION_RETRY_SWITCH:
            self._session._retry_connection = False
        self._methods = {m: m if _SESSION_RETRY_SWITCH else m.lower()
                         for m in ("GET", "HEAD", "PUT")}

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._session.closed

    async def close(self) -> None:
        """Close the session and its connections."""
        await self._session.close()

    async def send(
        self, method: str, path: str, headers: dict[str, str], timeout: float | None = None
    ) -> Answer:
        """Send one request to ``path`` (already percent-encoded) and read the whole answer.

        Raises: :class:`~aioimds.IMDSTimeoutError` (no complete answer in time),
        :class:`~aioimds.IMDSConnectionError` (refused, reset, closed early),
        :class:`~aioimds.IMDSResponseError` (a redirect, a body over the cap).
        """
        url = URL(self.base_url + path, encoded=True)
        tmo = self._timeout  # the same object each time: a new ClientTimeout costs ~3 us
        if timeout is not None and timeout != tmo.total:
            tmo = _timeout(timeout)
        try:
            # Awaited and released by hand, not ``async with``: the context manager's two extra
            # frames and its wait for the (long finished) request writer cost ~3 us a request.
            resp = await self._session.request(
                self._methods.get(method, method), url, headers=headers, allow_redirects=False,
                timeout=tmo)
            try:
                status = resp.status
                if 300 <= status < 400:
                    raise IMDSResponseError(
                        f"the service answered a redirect ({status}); redirects are never "
                        "followed: check the endpoint", path=path, status=status)
                body = await self._read(resp, path)
                return Answer(
                    status, body, _media_type(resp),
                    resp.headers.get(TTL_HEADER) if method == "PUT" else None,
                    resp.headers.get("Retry-After") if status == 429 else None,
                )
            finally:
                resp.release()  # a body not read whole closes the connection instead
        except IMDSError:
            raise
        except aiohttp.ServerTimeoutError as exc:  # only the connect has a timeout of its own
            raise IMDSTimeoutError(
                f"the connection to {self.base_url} got no answer within "
                f"{tmo.sock_connect or 0:.3g} s", path=path) from exc
        except asyncio.TimeoutError as exc:
            raise IMDSTimeoutError(
                f"no complete answer within {tmo.total:g} s", path=path) from exc
        except aiohttp.ClientPayloadError as exc:
            raise IMDSConnectionError(
                f"the answer was cut off ({type(exc).__name__})", path=path) from exc
        except aiohttp.ClientResponseError as exc:
            raise IMDSConnectionError(
                f"the answer was not valid HTTP ({type(exc).__name__}); check that the endpoint "
                f"{self.base_url} is an IMDS", path=path) from _without_token(exc)
        except (aiohttp.ClientError, OSError) as exc:
            raise IMDSConnectionError(
                f"cannot reach IMDS at {self.base_url} ({type(exc).__name__}); on EC2 check "
                "that the instance metadata service is enabled; elsewhere point the endpoint "
                "at an emulator (aioimds serve, or --emulator)",
                path=path) from exc

    async def _read(self, resp: aiohttp.ClientResponse, path: str) -> bytes:
        length = resp.content_length
        if length is not None and length > self._max_body:
            raise IMDSResponseError(
                f"body of {length} bytes is over the cap of {self._max_body} bytes",
                path=path, status=resp.status)
        if length is not None:
            return await resp.read()
        buf = bytearray()
        async for chunk in resp.content.iter_any():
            buf += chunk
            if len(buf) > self._max_body:
                raise IMDSResponseError(
                    f"body is over the cap of {self._max_body} bytes", path=path,
                    status=resp.status)
        return bytes(buf)


def _media_type(resp: aiohttp.ClientResponse) -> str:
    raw = resp.headers.get(aiohttp.hdrs.CONTENT_TYPE)
    return resp.content_type if raw is not None and raw.strip() else ""


def _timeout(seconds: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=seconds, sock_connect=seconds * CONNECT_SHARE)


def no_answer(exc: IMDSError) -> NoAnswer | None:
    """Why :meth:`Transport.send` got no answer when it raised ``exc``; ``None`` when it had
    one (a redirect, a body over the cap, an answer that is not valid HTTP)."""
    cause = exc.__cause__
    if isinstance(exc, IMDSTimeoutError):
        return NoAnswer.CONNECT if isinstance(cause, aiohttp.ServerTimeoutError) \
            else NoAnswer.TIMEOUT
    if isinstance(exc, IMDSConnectionError):
        if isinstance(cause, aiohttp.ClientResponseError):
            return None
        if isinstance(cause, (aiohttp.ClientConnectorError, ConnectionRefusedError)):
            return NoAnswer.CONNECT
        return NoAnswer.DROPPED
    return None


def _without_token(exc: BaseException) -> BaseException:
    """``exc`` with the token redacted from the request headers that aiohttp's
    ``ClientResponseError`` (a malformed answer) keeps in ``request_info`` and shows in its repr,
    so an error chained from it cannot lead to the token."""
    if isinstance(exc, aiohttp.ClientResponseError) and TOKEN_HEADER in exc.request_info.headers:
        headers = CIMultiDict(exc.request_info.headers)
        headers[TOKEN_HEADER] = REDACTED
        exc.request_info = exc.request_info._replace(headers=CIMultiDictProxy(headers))
        exc.args = (exc.request_info, exc.history)
    return exc
