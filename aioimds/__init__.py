"""aioimds: an asyncio client for the EC2 Instance Metadata Service (IMDSv2 first).

The public API is exactly ``__all__``; every other name is private.
"""

from ._version import __version__
from .client import IMDSClient
from .config import IMDSConfig
from .crawl import CrawlResult
from .errors import (
    IMDSConfigError,
    IMDSConnectionError,
    IMDSCrawlError,
    IMDSDisabledError,
    IMDSError,
    IMDSHTTPError,
    IMDSNotFoundError,
    IMDSResponseError,
    IMDSThrottledError,
    IMDSTimeoutError,
    IMDSTokenError,
    IMDSTokenTimeoutError,
)
from .paths import PathError
from .snapshot import Record, Snapshot, SnapshotFormatError

__all__ = [
    "CrawlResult",
    "IMDSClient",
    "IMDSConfig",
    "IMDSConfigError",
    "IMDSConnectionError",
    "IMDSCrawlError",
    "IMDSDisabledError",
    "IMDSError",
    "IMDSHTTPError",
    "IMDSNotFoundError",
    "IMDSResponseError",
    "IMDSThrottledError",
    "IMDSTimeoutError",
    "IMDSTokenError",
    "IMDSTokenTimeoutError",
    "PathError",
    "Record",
    "Snapshot",
    "SnapshotFormatError",
    "__version__",
]
