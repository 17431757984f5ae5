"""The documents and records of instance metadata as frozen dataclasses, and their parsers.

The formats are those of the EC2 user guide, "Instance metadata categories"
(https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-categories.html).
Each parser takes the leaf's text and its request path and raises
:class:`~aioimds.IMDSResponseError` naming that path for a malformed document.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..errors import IMDSResponseError
from . import _fields as f

__all__ = [
    "IAMInfo",
    "IdentityDocument",
    "MaintenanceEvent",
    "Placement",
    "RebalanceRecommendation",
    "SpotInstanceAction",
    "parse_iam_info",
    "parse_identity_document",
    "parse_maintenance_events",
    "parse_rebalance_recommendation",
    "parse_spot_instance_action",
]


@dataclass(frozen=True)
class IdentityDocument:
    """The instance identity document, ``dynamic/instance-identity/document``.

    Every documented field, snake_case; ``pending_time`` is a UTC datetime. The product-code
    lists are tuples, ``None`` when the document has ``null``; ``kernel_id``, ``ramdisk_id``
    and ``private_ip`` are ``None`` when null or absent.
    """

    account_id: str
    architecture: str
    availability_zone: str
    image_id: str
    instance_id: str
    instance_type: str
    pending_time: datetime
    region: str
    version: str
    private_ip: str | None = None
    billing_products: tuple[str, ...] | None = None
    devpay_product_codes: tuple[str, ...] | None = None
    marketplace_product_codes: tuple[str, ...] | None = None
    kernel_id: str | None = None
    ramdisk_id: str | None = None


@dataclass(frozen=True)
class Placement:
    """The ``placement/`` category; each field is ``None`` when its leaf is absent (404).

    ``partition_number`` is an int (partition placement groups only).
    """

    availability_zone: str | None = None
    availability_zone_id: str | None = None
    region: str | None = None
    group_name: str | None = None
    host_id: str | None = None
    partition_number: int | None = None


@dataclass(frozen=True)
class IAMInfo:
    """``iam/info``: the instance profile (``last_updated`` is a UTC datetime)."""

    code: str
    last_updated: datetime
    instance_profile_arn: str
    instance_profile_id: str


@dataclass(frozen=True)
class SpotInstanceAction:
    """``spot/instance-action``: ``action`` (``stop``, ``terminate`` or ``hibernate``) at
    ``time`` (UTC), about two minutes after the notice."""

    action: str
    time: datetime


@dataclass(frozen=True)
class RebalanceRecommendation:
    """``events/recommendations/rebalance``: when the rebalance recommendation was made."""

    notice_time: datetime


@dataclass(frozen=True)
class MaintenanceEvent:
    """One event of ``events/maintenance/scheduled`` or ``history``.

    ``code`` is e.g. ``system-reboot``; ``state`` ``active``, ``completed`` or ``canceled``;
    the times are UTC datetimes, ``None`` when absent.
    """

    code: str
    description: str | None
    event_id: str
    state: str
    not_before: datetime | None = None
    not_after: datetime | None = None
    not_before_deadline: datetime | None = None


def parse_identity_document(text: str, path: str) -> IdentityDocument:
    """Parse the instance identity document (JSON) served at ``path``.

    Raises: :class:`~aioimds.IMDSResponseError` naming ``path`` when it is not a JSON object
    or a field is missing or of the wrong type.
    """
    doc = f.json_object(text, path, "the instance identity document")
    return IdentityDocument(
        account_id=f.req_str(doc, "accountId", path),
        architecture=f.req_str(doc, "architecture", path),
        availability_zone=f.req_str(doc, "availabilityZone", path),
        image_id=f.req_str(doc, "imageId", path),
        instance_id=f.req_str(doc, "instanceId", path),
        instance_type=f.req_str(doc, "instanceType", path),
        pending_time=f.req_time(doc, "pendingTime", path),
        region=f.req_str(doc, "region", path),
        version=f.req_str(doc, "version", path),
        private_ip=f.opt_str(doc, "privateIp", path),
        billing_products=f.opt_strs(doc, "billingProducts", path),
        devpay_product_codes=f.opt_strs(doc, "devpayProductCodes", path),
        marketplace_product_codes=f.opt_strs(doc, "marketplaceProductCodes", path),
        kernel_id=f.opt_str(doc, "kernelId", path),
        ramdisk_id=f.opt_str(doc, "ramdiskId", path),
    )


def parse_iam_info(text: str, path: str) -> IAMInfo:
    """Parse ``iam/info`` (JSON). Raises :class:`~aioimds.IMDSResponseError` naming ``path``."""
    doc = f.json_object(text, path, "iam/info")
    return IAMInfo(
        code=f.req_str(doc, "Code", path),
        last_updated=f.req_time(doc, "LastUpdated", path),
        instance_profile_arn=f.req_str(doc, "InstanceProfileArn", path),
        instance_profile_id=f.req_str(doc, "InstanceProfileId", path),
    )


def parse_spot_instance_action(text: str, path: str) -> SpotInstanceAction:
    """Parse ``spot/instance-action``, ``{"action": "terminate", "time": "2017-09-18T08:22:00Z"}``.

    Raises: :class:`~aioimds.IMDSResponseError` naming ``path``.
    """
    doc = f.json_object(text, path, "the spot instance action")
    return SpotInstanceAction(action=f.req_str(doc, "action", path),
                              time=f.req_time(doc, "time", path))


def parse_rebalance_recommendation(text: str, path: str) -> RebalanceRecommendation:
    """Parse ``events/recommendations/rebalance``, ``{"noticeTime": "2020-11-05T08:22:00Z"}``.

    Raises: :class:`~aioimds.IMDSResponseError` naming ``path``.
    """
    doc = f.json_object(text, path, "the rebalance recommendation")
    return RebalanceRecommendation(notice_time=f.req_time(doc, "noticeTime", path))


def parse_maintenance_events(text: str, path: str) -> list[MaintenanceEvent]:
    """Parse ``events/maintenance/scheduled`` or ``history``: a JSON array (``[]`` is ``[]``,
    amazon.aws #1134) of objects with ``Code``, ``Description``, ``EventId``, ``State`` and the
    times ``NotBefore``, ``NotAfter``, ``NotBeforeDeadline`` (``21 Jan 2019 09:00:43 GMT``).

    Raises: :class:`~aioimds.IMDSResponseError` naming ``path``.
    """
    events = []
    for item in f.json_array(text, path, "the maintenance events"):
        if not isinstance(item, dict):
            raise IMDSResponseError("a maintenance event is not a JSON object", path=path,
                                    status=200)
        events.append(MaintenanceEvent(
            code=f.req_str(item, "Code", path),
            description=f.opt_str(item, "Description", path),
            event_id=f.req_str(item, "EventId", path),
            state=f.req_str(item, "State", path),
            not_before=f.opt_time(item, "NotBefore", path),
            not_after=f.opt_time(item, "NotAfter", path),
            not_before_deadline=f.opt_time(item, "NotBeforeDeadline", path),
        ))
    return events
