"""The probes of ``aioimds doctor``: single requests to the endpoint, each timed and classified.

Every probe goes through :class:`~aioimds.transport.Transport` (the client's own HTTP layer:
no redirects, no proxies, no ``X-Forwarded-For``), except the TCP connect, which opens and
closes one socket. Probes send at most :data:`LATENCY_SAMPLES` + :data:`THROTTLE_PROBE` + 4
requests, to the configured endpoint only (and to the IPv6 endpoint when asked).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from dataclasses import dataclass, field

from yarl import URL

from .. import clock
from ..errors import IMDSConnectionError, IMDSError, IMDSTimeoutError
from ..transport import Transport
from ..wire import TOKEN_HEADER, TOKEN_PATH, TTL_HEADER

__all__ = ["LATENCY_SAMPLES", "PROBE_PATH", "THROTTLE_PROBE", "Outcome", "Prober"]

PROBE_PATH = "/latest/meta-data/"
"""What the GET probes ask for: a listing every IMDS serves."""
LATENCY_SAMPLES = 5
"""GETs, one after the other, whose answer times give the latency."""
THROTTLE_PROBE = 10
"""GETs sent at once by the throttle probe: enough to meet a small burst limit, few enough to
cost any service nothing."""
DROP_RETRIES = 2
"""Times a probe whose connection is closed without an answer is sent again, as the client
retries a dropped connection, before the drop counts as its outcome."""


@dataclass
class Outcome:
    """What one probe got.

    Attributes:
        kind: ``"ok"`` (answered as hoped), ``"status"`` (answered with another status),
            ``"refused"`` (connection refused), ``"no answer"`` (timed out), ``"closed"``
            (connection closed or reset without an answer), ``"error"`` (anything else).
        ms: milliseconds the probe took.
        status: the HTTP status, when answered.
        detail: a few words for the report.
        token: the token a PUT got (never printed).
    """

    kind: str
    ms: float
    status: int | None = None
    detail: str = ""
    token: str | None = field(default=None, repr=False)


def _ms(start: float) -> float:
    return (clock.now() - start) * 1000


class Prober:
    """Runs probes against ``endpoint`` (``http://host[:port]``) with ``timeout`` seconds each.

    Use as ``async with Prober(endpoint, timeout) as p:``.
    """

    def __init__(self, endpoint: str, timeout: float, *, ttl: int = 21600) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.ttl = ttl
        url = URL(endpoint)
        self.host = url.host or ""
        self.port = url.port or 80
        self._transport: Transport | None = None

    async def __aenter__(self) -> Prober:
        self._transport = Transport(self.endpoint, timeout=self.timeout, max_body=1 << 20,
                                    connections=THROTTLE_PROBE)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._transport is not None:
            await self._transport.close()

    async def tcp(self) -> Outcome:
        """Open and close one TCP connection to the endpoint."""
        start = clock.now()
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.timeout)
        except asyncio.TimeoutError:
            return Outcome("no answer", _ms(start),
                           detail=f"no answer within {self.timeout:g} s")
        except ConnectionRefusedError:
            return Outcome("refused", _ms(start), detail="connection refused")
        except OSError as exc:
            return Outcome("error", _ms(start), detail=exc.strerror or str(exc))
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return Outcome("ok", _ms(start), detail=f"connected to {self.host}:{self.port}")

    async def _send(self, method: str, path: str, headers: dict[str, str]) -> Outcome:
        out = await self._send_once(method, path, headers)
        for _ in range(DROP_RETRIES):
            if out.kind != "closed":
                break
            out = await self._send_once(method, path, headers)
        return out

    async def _send_once(self, method: str, path: str, headers: dict[str, str]) -> Outcome:
        if self._transport is None:
            raise RuntimeError("use 'async with Prober(...)'")
        start = clock.now()
        try:
            ans = await self._transport.send(method, path, headers, self.timeout)
        except IMDSTimeoutError:
            return Outcome("no answer", _ms(start), detail=f"no answer within {self.timeout:g} s")
        except IMDSConnectionError as exc:
            return Outcome("closed", _ms(start), detail=exc.message)
        except IMDSError as exc:
            return Outcome("error", _ms(start), detail=exc.message)
        kind = "ok" if ans.status == 200 else "status"
        out = Outcome(kind, _ms(start), ans.status, f"answered {ans.status}")
        if method == "PUT" and ans.status == 200:
            token = ans.body.decode("ascii", "replace").strip()
            if token and all("!" <= c <= "~" for c in token):
                out.token = token
                out.detail = f"answered 200, TTL {ans.ttl or '?'} s"
            else:
                out.kind, out.detail = "status", "answered 200 with something that is not a token"
        return out

    async def token_put(self) -> Outcome:
        """``PUT /latest/api/token``: answered (a token), refused (a status) or no answer."""
        return await self._send("PUT", TOKEN_PATH, {TTL_HEADER: str(self.ttl)})

    async def get(self, token: str | None) -> Outcome:
        """``GET`` :data:`PROBE_PATH`, with ``token`` or without one (IMDSv1)."""
        return await self._send("GET", PROBE_PATH, {TOKEN_HEADER: token} if token else {})

    async def latency(self, token: str | None) -> tuple[float, float, list[Outcome]]:
        """(median ms, max ms, outcomes) of :data:`LATENCY_SAMPLES` GETs in a row; the times
        are those of the GETs answered 200 (0.0 when none was)."""
        outs = [await self.get(token) for _ in range(LATENCY_SAMPLES)]
        times = [out.ms for out in outs if out.kind == "ok"]
        if not times:
            return 0.0, 0.0, outs
        return statistics.median(times), max(times), outs

    async def burst(self, token: str | None) -> dict[str, int]:
        """:data:`THROTTLE_PROBE` GETs at once: how many were answered 200, 429, otherwise,
        5xx, otherwise, or not at all (keys ``"200"``, ``"429"``, ``"5xx"``, ``"other"``,
        ``"none"``)."""
        outs = await asyncio.gather(*(self.get(token) for _ in range(THROTTLE_PROBE)))
        counts = {"200": 0, "429": 0, "5xx": 0, "other": 0, "none": 0}
        for out in outs:
            key = ("200" if out.status == 200 else "429" if out.status == 429
                   else "5xx" if out.status >= 500 else "other") \
                if out.status is not None else "none"
            counts[key] += 1
        return counts
