"""aioimds: an asyncio client for the EC2 Instance Metadata Service (IMDSv2 first).

The public API is exactly ``__all__``; every other name is private.
"""

from ._version import __version__
from .client import IMDSClient
from .config import IMDSConfig
from .crawl import CrawlResult
from .credentials import (
    CREDENTIALS_REFRESH_MARGIN,
    CREDENTIALS_RETRY_INTERVAL,
    CredentialsProvider,
    RoleCredentials,
    as_botocore_metadata,
)
from .errors import (
    IMDSConfigError,
    IMDSConnectionError,
    IMDSCrawlError,
    IMDSCredentialsError,
    IMDSDisabledError,
    IMDSError,
    IMDSHTTPError,
    IMDSIdentityError,
    IMDSNotFoundError,
    IMDSResponseError,
    IMDSThrottledError,
    IMDSTimeoutError,
    IMDSTokenError,
    IMDSTokenTimeoutError,
)
from .identity import verify_identity_document
from .metadata import (
    IAMInfo,
    IdentityDocument,
    MaintenanceEvent,
    NetworkInterface,
    Placement,
    RebalanceRecommendation,
    SpotInstanceAction,
)
from .paths import PathError
from .snapshot import Record, Snapshot, SnapshotFormatError
from .watch import (
    Watcher,
    watch_maintenance_events,
    watch_rebalance_recommendation,
    watch_spot_interruption,
    watch_target_lifecycle_state,
)

__all__ = [
    "CREDENTIALS_REFRESH_MARGIN",
    "CREDENTIALS_RETRY_INTERVAL",
    "CrawlResult",
    "CredentialsProvider",
    "IAMInfo",
    "IMDSClient",
    "IMDSConfig",
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
    "IdentityDocument",
    "MaintenanceEvent",
    "NetworkInterface",
    "PathError",
    "Placement",
    "RebalanceRecommendation",
    "Record",
    "RoleCredentials",
    "Snapshot",
    "SnapshotFormatError",
    "SpotInstanceAction",
    "Watcher",
    "__version__",
    "as_botocore_metadata",
    "verify_identity_document",
    "watch_maintenance_events",
    "watch_rebalance_recommendation",
    "watch_spot_interruption",
    "watch_target_lifecycle_state",
]
