"""One exception hierarchy for aioimds, rooted at :class:`IMDSError`.

Every error names what failed (``path``, the request path such as ``/latest/meta-data/ami-id``,
and ``status``, the HTTP status when the service answered) and what to do about it. aiohttp and
asyncio exceptions are chained with ``from``; the session token and role credentials never
appear in a message.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "IMDSConfigError",
    "IMDSConnectionError",
    "IMDSCrawlError",
    "IMDSCredentialsError",
    "IMDSDisabledError",
    "IMDSError",
    "IMDSHTTPError",
    "IMDSIdentityError",
    "IMDSNotFoundError",
    "IMDSResponseError",
    "IMDSThrottledError",
    "IMDSTimeoutError",
    "IMDSTokenError",
    "IMDSTokenTimeoutError",
    "IMDSUnreachableError",
    "PathError",
    "SnapshotFormatError",
]


class IMDSError(Exception):
    """Root of every error aioimds raises.

    Attributes:
        path: the request path that failed (``/latest/...``), or ``None`` when no request was
            involved (configuration).
        status: the HTTP status the service answered, or ``None`` when there was no answer.
    """

    def __init__(self, message: str, *, path: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.path = path
        self.status = status

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{where}{self.message}"


class IMDSConfigError(IMDSError, ValueError):
    """A configuration value is invalid; the message names the variable or config-file key."""


class IMDSDisabledError(IMDSError):
    """IMDS is disabled (``AWS_EC2_METADATA_DISABLED=true``); no connection was made."""


class IMDSNotFoundError(IMDSError):
    """The service answered 404 for ``path``: the key does not exist on this instance."""


class IMDSHTTPError(IMDSError):
    """The service answered with an unexpected HTTP ``status`` (after any retries)."""


class IMDSThrottledError(IMDSHTTPError):
    """The service kept answering 429 (throttling) until the retries ran out."""


class IMDSConnectionError(IMDSError):
    """No HTTP answer: connection refused, reset or closed before a complete response."""


class IMDSUnreachableError(IMDSConnectionError):
    """The endpoint never answered this client: its connections were refused or got no answer
    (not on EC2, a wrong endpoint). The message names the endpoint and what to do."""


class IMDSTimeoutError(IMDSError, TimeoutError):
    """No complete answer within the per-attempt timeout, on every attempt or the deadline."""


class IMDSResponseError(IMDSError):
    """The service answered 200 with something that is not what IMDS sends.

    A redirect, a body over the size cap, a listing that is not UTF-8 or looks like HTML,
    a hostile entry name (``..``, ``/`` inside a name), or a JSON leaf that does not parse.
    """


class IMDSTokenError(IMDSError):
    """The session token could not be obtained (``PUT /latest/api/token``) or was refused."""


class IMDSTokenTimeoutError(IMDSTokenError, TimeoutError):
    """The token PUT got no answer within the timeout and IMDSv1 could not be used.

    Inside a container this is almost always the instance's hop limit of 1: raise it with
    ``aws ec2 modify-instance-metadata-options --instance-id ID --http-put-response-hop-limit 2``.
    """


class IMDSCredentialsError(IMDSError):
    """Role credentials could not be had: no IAM role is attached, the credentials document's
    ``Code`` is not ``Success``, or it holds expired credentials. Never carries a secret."""


class IMDSIdentityError(IMDSError):
    """The instance identity document could not be verified against its signature: they do
    not match, an input is malformed, or ``cryptography`` is missing
    (``pip install 'aioimds[verify]'``)."""


class PathError(IMDSError, ValueError):
    """A path given by the caller is not a valid IMDS path under ``latest/``."""


class SnapshotFormatError(IMDSError, ValueError):
    """A snapshot file or object does not follow ``imds-snapshot/1``; the message says where."""


class IMDSCrawlError(IMDSError):
    """A dump is incomplete: one or more paths failed with something other than 404.

    Attributes:
        failures: request path -> the error it failed with, for every failed path.
        partial: the :class:`~aioimds.snapshot.Snapshot` of everything that did succeed.
    """

    def __init__(self, failures: Mapping[str, IMDSError], partial: object) -> None:
        lines = [f"{path}: {_reason(err)}" for path, err in sorted(failures.items())]
        super().__init__(
            f"incomplete dump, {len(failures)} path(s) failed:\n" + "\n".join(lines)
        )
        self.failures = dict(failures)
        self.partial = partial


def _reason(err: IMDSError) -> str:
    """The message of ``err`` without its path prefix."""
    return err.message
