"""The typed layer: dataclass views of instance metadata, role credentials, identity-document
verification and watchers, all read through the client's own ``get``/``get_bytes``/``list``.

One boundary: the rest of the package imports only the names below, never a module of this
sub-package. The layer depends on the client only through the :class:`Source` protocol, so it
imports nothing of ``aioimds.client`` (the client imports it and inherits
:class:`MetadataViews`). Formats: EC2 user guide, "Instance metadata categories"
(https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-categories.html).
"""

from ._fetch import Source
from ._fields import parse_json
from .credentials import (
    CREDENTIALS_MIN_REFRESH_INTERVAL,
    CREDENTIALS_REFRESH_MARGIN,
    CREDENTIALS_RETRY_INTERVAL,
    CREDENTIALS_RETRY_JITTER,
    CredentialsProvider,
    RoleCredentials,
    as_botocore_metadata,
)
from .documents import (
    IAMInfo,
    IdentityDocument,
    MaintenanceEvent,
    Placement,
    RebalanceRecommendation,
    SpotInstanceAction,
)
from .identity import verify_identity_document
from .metadata import MetadataViews
from .metadata_network import NetworkInterface
from .watch import (
    LIFECYCLE_INTERVAL,
    MAINTENANCE_INTERVAL,
    REBALANCE_INTERVAL,
    SPOT_INTERVAL,
    Watcher,
    watch_maintenance_events,
    watch_rebalance_recommendation,
    watch_spot_interruption,
    watch_target_lifecycle_state,
)

__all__ = [
    "CREDENTIALS_MIN_REFRESH_INTERVAL",
    "CREDENTIALS_REFRESH_MARGIN",
    "CREDENTIALS_RETRY_INTERVAL",
    "CREDENTIALS_RETRY_JITTER",
    "LIFECYCLE_INTERVAL",
    "MAINTENANCE_INTERVAL",
    "REBALANCE_INTERVAL",
    "SPOT_INTERVAL",
    "CredentialsProvider",
    "IAMInfo",
    "IdentityDocument",
    "MaintenanceEvent",
    "MetadataViews",
    "NetworkInterface",
    "Placement",
    "RebalanceRecommendation",
    "RoleCredentials",
    "Source",
    "SpotInstanceAction",
    "Watcher",
    "as_botocore_metadata",
    "parse_json",
    "verify_identity_document",
    "watch_maintenance_events",
    "watch_rebalance_recommendation",
    "watch_spot_interruption",
    "watch_target_lifecycle_state",
]
