"""The documented IMDS category paths aioimds reads, serves or schedules, relative to ``latest/``.

One home for the paths the typed views, the credentials provider, the watchers, the renderer
and the emulator (default tree, schedule, generated trees) all name. Listings end with ``/``.
Prefix :data:`~aioimds.paths.ROOT` (``/latest/``) for a request path or snapshot key.

Source: the EC2 user guide, "Instance metadata categories"
(https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-categories.html), and
for the identity document and its signature "Instance identity documents"
(https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instance-identity-documents.html).
"""

from __future__ import annotations

__all__ = [
    "AMI_ID",
    "AMI_LAUNCH_INDEX",
    "AVAILABILITY_ZONE",
    "AVAILABILITY_ZONE_ID",
    "BASIC_LEAVES",
    "BLOCK_DEVICE_MAPPING",
    "CREDENTIALS",
    "CREDENTIALS_EXTENDED",
    "DYNAMIC",
    "EC2_IDENTITY",
    "ELASTIC_GPUS",
    "ELASTIC_INFERENCE",
    "EVENTS",
    "FWS",
    "IAM",
    "IAM_INFO",
    "IDENTITY_CREDENTIALS",
    "IDENTITY_DOCUMENT",
    "IDENTITY_SIGNATURE",
    "INSTANCE_ID",
    "INSTANCE_IDENTITY",
    "INSTANCE_TYPE",
    "INTERFACES",
    "INTERFACE_LEAVES",
    "LIFECYCLE_STATE",
    "LOCAL_IPV4",
    "MAC",
    "MAC_INTERFACES",
    "MAINTENANCE",
    "MAINTENANCE_HISTORY",
    "MAINTENANCE_SCHEDULED",
    "META_DATA",
    "NETWORK",
    "PLACEMENT",
    "PUBLIC_IPV4",
    "PUBLIC_KEYS",
    "REBALANCE",
    "REGION",
    "SERVICES",
    "SPOT",
    "SPOT_ACTION",
    "SPOT_TERMINATION_TIME",
    "TAGS",
    "TAGS_INSTANCE",
    "USER_DATA",
]

META_DATA = "meta-data/"
"""The instance metadata categories. ``latest/`` lists it (and :data:`DYNAMIC`) without the
trailing ``/``."""
DYNAMIC = "dynamic/"
"""Dynamic data: the instance identity document and its signatures."""
USER_DATA = "user-data"
"""The user data given at launch, bytes as given (404 when there is none)."""

INSTANCE_ID = META_DATA + "instance-id"
INSTANCE_TYPE = META_DATA + "instance-type"
AMI_ID = META_DATA + "ami-id"
"""The AMI the instance was launched from."""
AMI_LAUNCH_INDEX = META_DATA + "ami-launch-index"
"""A decimal integer (``0`` for the first instance of a launch)."""
LOCAL_IPV4 = META_DATA + "local-ipv4"
PUBLIC_IPV4 = META_DATA + "public-ipv4"
"""Absent (404) on an instance without a public IPv4 address."""

MAC = META_DATA + "mac"
"""The MAC address of the primary interface (``0e:49:61:0f:c3:11``): it names that interface's
listing under :data:`MAC_INTERFACES`."""
NETWORK = META_DATA + "network/"
INTERFACES = NETWORK + "interfaces/"
SERVICES = META_DATA + "services/"
BLOCK_DEVICE_MAPPING = META_DATA + "block-device-mapping/"
IAM = META_DATA + "iam/"
EVENTS = META_DATA + "events/"
MAINTENANCE = EVENTS + "maintenance/"
IDENTITY_CREDENTIALS = META_DATA + "identity-credentials/"
EC2_IDENTITY = IDENTITY_CREDENTIALS + "ec2/"
"""Lists ``info`` and ``security-credentials/`` (which lists ``ec2-instance``, the instance
identity role's credentials)."""
ELASTIC_INFERENCE = META_DATA + "elastic-inference/"
ELASTIC_GPUS = META_DATA + "elastic-gpus/"
"""Like :data:`ELASTIC_INFERENCE`, lists ``associations/``, which lists the accelerator ids."""
INSTANCE_IDENTITY = DYNAMIC + "instance-identity/"
FWS = DYNAMIC + "fws/"
"""Lists ``instance-monitoring``."""

BASIC_LEAVES = tuple(META_DATA + name for name in (
    "ami-id", "ami-launch-index", "ami-manifest-path", "hostname", "instance-action",
    "instance-id", "instance-type", "local-hostname", "local-ipv4", "reservation-id",
    "security-groups", "placement/availability-zone", "services/domain", "services/partition",
    "block-device-mapping/ami", "block-device-mapping/root", "profile", "public-hostname",
    "public-ipv4"))
"""Leaves listed on almost every instance: the categories of the 2007-2008 API versions (the
public names only with a public IPv4 address; ``profile`` on all but some test trees)."""
INTERFACE_LEAVES = (
    "device-number", "interface-id", "local-hostname", "local-ipv4s", "mac", "owner-id",
    "security-group-ids", "security-groups", "subnet-id", "subnet-ipv4-cidr-block", "vpc-id",
    "vpc-ipv4-cidr-block", "vpc-ipv4-cidr-blocks")
"""Leaves every VPC interface lists under ``MAC_INTERFACES + mac + "/"``; with a public IPv4
address it also lists ``public-hostname``, ``public-ipv4s`` and ``ipv4-associations/``."""

PLACEMENT = META_DATA + "placement/"
REGION = PLACEMENT + "region"
AVAILABILITY_ZONE = PLACEMENT + "availability-zone"
AVAILABILITY_ZONE_ID = PLACEMENT + "availability-zone-id"
"""The zone's ID (``apne1-az4``), the same zone in every account, unlike its name."""

IAM_INFO = META_DATA + "iam/info"
"""The instance profile; absent (404) when no IAM role is attached."""
CREDENTIALS = META_DATA + "iam/security-credentials/"
"""Lists the role name; ``CREDENTIALS + role`` is the role's credentials document."""
CREDENTIALS_EXTENDED = META_DATA + "iam/security-credentials-extended/"
"""As :data:`CREDENTIALS`, the document also holding ``AccountId`` (not on every instance)."""

PUBLIC_KEYS = META_DATA + "public-keys/"
"""Lists ``0=my-key``: the entry ``N=name`` stands for the listing ``N/``, whose
``openssh-key`` is the key."""
TAGS = META_DATA + "tags/"
TAGS_INSTANCE = TAGS + "instance/"
"""Instance tag keys (when tags in metadata are enabled); ``TAGS_INSTANCE + key`` is a value."""
MAC_INTERFACES = META_DATA + "network/interfaces/macs/"
"""Lists the network interfaces by MAC address (``0e:49:61:0f:c3:11/``)."""

SPOT = META_DATA + "spot/"
SPOT_ACTION = SPOT + "instance-action"
"""The spot interruption notice (JSON ``action`` and ``time``); absent until one is given."""
SPOT_TERMINATION_TIME = SPOT + "termination-time"
"""The older form of the notice: the time alone."""
REBALANCE = META_DATA + "events/recommendations/rebalance"
"""The rebalance recommendation (JSON ``noticeTime``); absent until one is made."""
MAINTENANCE_SCHEDULED = META_DATA + "events/maintenance/scheduled"
"""A JSON array of the instance's scheduled events (``[]`` when there are none)."""
MAINTENANCE_HISTORY = META_DATA + "events/maintenance/history"
"""A JSON array of completed or canceled events."""
LIFECYCLE_STATE = META_DATA + "autoscaling/target-lifecycle-state"
"""The Auto Scaling target lifecycle state (``InService``, ``Terminated``, ...); absent outside
Auto Scaling."""

IDENTITY_DOCUMENT = DYNAMIC + "instance-identity/document"
IDENTITY_SIGNATURE = DYNAMIC + "instance-identity/signature"
"""The base64 RSA PKCS#1 v1.5 SHA-256 signature of the document ("Verify the instance identity
document", option 2); ``pkcs7`` is DSA/SHA-1 and ``rsa2048`` is PKCS7."""
