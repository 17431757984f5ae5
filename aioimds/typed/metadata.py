"""Typed views of instance metadata: the client coroutines (the documents they return and
their parsers are in :mod:`aioimds.typed.documents`, re-exported here).

:class:`MetadataViews` gives :class:`~aioimds.IMDSClient` one coroutine per common view. They
are thin: each one calls the client's ``get``/``get_bytes``/``list``, never a second HTTP
path. What the service answers 404 for (``public-ipv4`` on a private instance, no spot notice,
no role) is ``None``, ``{}`` or ``[]``, never an exception, and is not logged (vector #8677).
The one exception to "not logged" is tags in metadata switched off, a setting of the instance
the reader may want to change: :meth:`MetadataViews.tags` logs that once.
"""

from __future__ import annotations

import asyncio

from .. import catalogue as c
from ..errors import IMDSIdentityError, IMDSNotFoundError, IMDSResponseError
from ..paths import key_entry, request_path
from . import _fields as f
from ._fetch import Source, gather_all, optional_entries, optional_text
from .documents import (
    IAMInfo,
    IdentityDocument,
    MaintenanceEvent,
    Placement,
    RebalanceRecommendation,
    SpotInstanceAction,
    parse_iam_info,
    parse_identity_document,
    parse_maintenance_events,
    parse_rebalance_recommendation,
    parse_spot_instance_action,
)
from .identity import verify_identity_document
from .lifetime import default_max_age
from .metadata_network import NetworkInterface, fetch_network_interfaces
from .metadata_tags import TagsReader

__all__ = ["MetadataViews"]

DOCUMENT = c.IDENTITY_DOCUMENT
SIGNATURE = c.IDENTITY_SIGNATURE


def _key_index(entry: str, listing: str) -> tuple[str, str]:
    """``0=my-key`` -> ``("0", "my-key")`` (amazon.aws #942); the index must be a decimal number."""
    index, name = key_entry(entry) or (entry, "")
    if not (index.isascii() and index.isdigit()):
        raise IMDSResponseError(f"public key entry {entry!r} has no numeric index",
                                path=request_path(listing), status=200)
    return index, name or index


class MetadataViews:
    """Typed metadata coroutines over a :class:`~aioimds.typed.Source` (paths under ``latest/``).

    A concrete class: every coroutine reads through the ``source`` given to ``__init__`` with
    its ``get``/``get_bytes``/``list``, never a second HTTP path. :class:`~aioimds.IMDSClient`
    inherits these coroutines and is its own source (``MetadataViews.__init__(self, self)``),
    so ``await imds.region()`` works on the client; any other :class:`Source` (a test double,
    a wrapper that caches) can be given ``MetadataViews(source)`` for the same views.

    Cached by default: the values that cannot change while the instance runs (instance ID, AMI
    ID, Region, zone, instance type, identity document, ...; the list and the reasoning:
    :mod:`aioimds.typed.lifetime`). Every other view reads fresh. Each view takes
    ``max_age`` (seconds, or ``math.inf``): the oldest cached answer it accepts, in place of
    its default (``0`` asks the service). ``IMDSClient(cache=False)`` always asks.

    Absent (404) is ``None``, ``{}`` or ``[]``. Every coroutine raises
    :class:`~aioimds.IMDSResponseError` naming the path for a malformed leaf, and the other
    :class:`~aioimds.IMDSError` subclasses of the source's ``get`` (no answer, throttling, ...).
    """

    def __init__(self, source: Source) -> None:
        self._source = source
        self._tags = TagsReader(source)

    async def region(self, *, max_age: float | None = None) -> str | None:
        """The Region, ``meta-data/placement/region`` (``"ap-northeast-1"``); cached."""
        return await self._scalar(c.REGION, max_age)

    async def availability_zone(self, *, max_age: float | None = None) -> str | None:
        """The Availability Zone, ``meta-data/placement/availability-zone``; cached."""
        return await self._scalar(c.AVAILABILITY_ZONE, max_age)

    async def availability_zone_id(self, *, max_age: float | None = None) -> str | None:
        """The zone's ID, ``meta-data/placement/availability-zone-id`` (``"apne1-az4"``);
        cached."""
        return await self._scalar(c.AVAILABILITY_ZONE_ID, max_age)

    async def instance_id(self, *, max_age: float | None = None) -> str | None:
        """The instance ID, ``meta-data/instance-id`` (``"i-0123456789abcdef0"``); cached."""
        return await self._scalar(c.INSTANCE_ID, max_age)

    async def ami_id(self, *, max_age: float | None = None) -> str | None:
        """The AMI the instance was launched from, ``meta-data/ami-id``; cached."""
        return await self._scalar(c.AMI_ID, max_age)

    async def instance_type(self, *, max_age: float | None = None) -> str | None:
        """The instance type, ``meta-data/instance-type`` (``"t3.micro"``); cached for
        :data:`~aioimds.typed.lifetime.RUNNING_MAX_AGE` (a hibernated instance can wake with
        another type)."""
        return await self._scalar(c.INSTANCE_TYPE, max_age)

    async def account_id(self, *, max_age: float | None = None) -> str | None:
        """The AWS account ID, the identity document's ``accountId``; cached as the
        document."""
        doc = await self.identity_document(max_age=max_age)
        return None if doc is None else doc.account_id

    async def public_ipv4(self, *, max_age: float | None = None) -> str | None:
        """``meta-data/public-ipv4``; ``None`` on an instance without one (vector #8677)."""
        return await self._scalar(c.PUBLIC_IPV4, max_age)

    async def local_ipv4(self, *, max_age: float | None = None) -> str | None:
        """The primary private IPv4 address, ``meta-data/local-ipv4``."""
        return await self._scalar(c.LOCAL_IPV4, max_age)

    async def target_lifecycle_state(self, *, max_age: float | None = None) -> str | None:
        """The Auto Scaling target lifecycle state (``"InService"``, ``"Terminated"``, ...),
        ``meta-data/autoscaling/target-lifecycle-state``; ``None`` outside Auto Scaling."""
        return await self._scalar(c.LIFECYCLE_STATE, max_age)

    async def ami_launch_index(self, *, max_age: float | None = None) -> int | None:
        """``meta-data/ami-launch-index`` as an int (``"0"`` -> ``0``, amazon.aws #1134);
        cached."""
        path = c.AMI_LAUNCH_INDEX
        text = await optional_text(self._source, path, default_max_age(path, max_age))
        return None if text is None else f.int_leaf(text, request_path(path))

    async def identity_document(self, *, max_age: float | None = None
                                ) -> IdentityDocument | None:
        """The instance identity document, ``dynamic/instance-identity/document``; cached for
        :data:`~aioimds.typed.lifetime.RUNNING_MAX_AGE` (it holds the instance type).

        Unverified: use :meth:`verified_identity_document` before trusting it.
        """
        text = await optional_text(self._source, DOCUMENT, default_max_age(DOCUMENT, max_age))
        return None if text is None else parse_identity_document(text, request_path(DOCUMENT))

    async def verified_identity_document(self, certificate: str) -> IdentityDocument:
        """The identity document, verified against ``dynamic/instance-identity/signature``
        with the AWS RSA public ``certificate`` (PEM) of the instance's Region. Both are read
        fresh, so they always belong together.

        Raises: :class:`~aioimds.IMDSIdentityError` when the signature does not match, the
        document or signature is absent (404), or ``cryptography`` is missing.
        """
        body, signature = await asyncio.gather(self._optional_bytes(DOCUMENT),
                                               optional_text(self._source, SIGNATURE))
        if body is None or signature is None:
            missing = DOCUMENT if body is None else SIGNATURE
            raise IMDSIdentityError("absent (404): nothing to verify",
                                    path=request_path(missing), status=404)
        verify_identity_document(body, signature, certificate)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise IMDSResponseError("the instance identity document is not UTF-8",
                                    path=request_path(DOCUMENT), status=200) from exc
        return parse_identity_document(text, request_path(DOCUMENT))

    async def placement(self, *, max_age: float | None = None) -> Placement:
        """The ``meta-data/placement/`` category; absent leaves are ``None``; each leaf
        cached as its own view (the group, host and partition for
        :data:`~aioimds.typed.lifetime.RUNNING_MAX_AGE`)."""
        names = ("availability-zone", "availability-zone-id", "region", "group-name",
                 "host-id", "partition-number")
        values = await gather_all(self._scalar(c.PLACEMENT + n, max_age) for n in names)
        zone, zone_id, region, group, host, partition = values
        number = None if partition is None else f.int_leaf(
            partition, request_path(c.PLACEMENT + "partition-number"))
        return Placement(availability_zone=zone, availability_zone_id=zone_id, region=region,
                         group_name=group, host_id=host, partition_number=number)

    async def iam_info(self, *, max_age: float | None = None) -> IAMInfo | None:
        """``meta-data/iam/info``; ``None`` when no IAM role is attached. Fresh by default:
        the instance profile of a running instance can be replaced."""
        path = c.IAM_INFO
        text = await optional_text(self._source, path, max_age)
        return None if text is None else parse_iam_info(text, request_path(path))

    async def network_interfaces(self, *, max_age: float | None = None
                                 ) -> dict[str, NetworkInterface]:
        """Every network interface by MAC, ``meta-data/network/interfaces/macs/``; all leaves
        are fetched concurrently (``max_age`` applies to each). See
        :class:`~aioimds.NetworkInterface`."""
        return await fetch_network_interfaces(self._source, max_age)

    async def public_keys(self, *, max_age: float | None = None) -> dict[str, str]:
        """Public keys by name: ``public-keys/`` lists ``0=my-key`` and the key is at
        ``public-keys/0/openssh-key`` (amazon.aws #942); the key's surrounding whitespace is
        stripped."""
        listing = c.PUBLIC_KEYS
        entries = await optional_entries(self._source, listing, max_age)
        keys = [_key_index(entry, listing) for entry in entries]
        bodies = await gather_all(
            optional_text(self._source, f"{listing}{index}/openssh-key", max_age)
            for index, _ in keys)
        return {name: body.strip() for (_, name), body in zip(keys, bodies, strict=True)
                if body is not None}

    async def tags(self, *, max_age: float | None = None) -> dict[str, str] | None:
        """Instance tags, ``meta-data/tags/instance/``: exact keys (``= , + @ : .`` and spaces
        kept, amazon.aws PR #3038), values exactly as served (an empty value is ``""``).

        ``None`` when tags in metadata are not enabled on the instance (the listing answers
        404), ``{}`` when the instance has none; each is logged once, not on every call (see
        :mod:`aioimds.typed.metadata_tags`).
        """
        return await self._tags.read(max_age)

    async def spot_instance_action(self, *, max_age: float | None = None
                                   ) -> SpotInstanceAction | None:
        """The pending spot interruption, ``meta-data/spot/instance-action``; ``None`` until
        a notice exists."""
        path = c.SPOT_ACTION
        text = await optional_text(self._source, path, max_age)
        return None if text is None else parse_spot_instance_action(text, request_path(path))

    async def rebalance_recommendation(self, *, max_age: float | None = None
                                       ) -> RebalanceRecommendation | None:
        """``meta-data/events/recommendations/rebalance``; ``None`` until one is made."""
        path = c.REBALANCE
        text = await optional_text(self._source, path, max_age)
        return (None if text is None
                else parse_rebalance_recommendation(text, request_path(path)))

    async def scheduled_maintenance_events(self, *, max_age: float | None = None
                                           ) -> list[MaintenanceEvent]:
        """``meta-data/events/maintenance/scheduled``; ``[]`` when none (amazon.aws #1134) or
        absent."""
        return await self._events(c.MAINTENANCE_SCHEDULED, max_age)

    async def past_maintenance_events(self, *, max_age: float | None = None
                                      ) -> list[MaintenanceEvent]:
        """``meta-data/events/maintenance/history`` (completed or canceled events)."""
        return await self._events(c.MAINTENANCE_HISTORY, max_age)

    async def user_data(self) -> bytes | None:
        """``user-data`` exactly as served: any bytes up to 16 KiB (a gzip archive, text that
        looks like base64, ``b""`` when empty), never decoded; ``None`` when the instance has
        none (404). Read fresh: it can be changed while the instance is stopped."""
        return await self._optional_bytes(c.USER_DATA)

    # -- helpers -------------------------------------------------------------------------

    async def _scalar(self, path: str, max_age: float | None) -> str | None:
        """A one-value leaf, stripped; ``None`` when absent (404) or empty. Reads the source
        itself (no helper coroutine between): the cached views are on a hot path."""
        try:
            text = await self._source.get(path, max_age=default_max_age(path, max_age))
        except IMDSNotFoundError:
            return None
        return text.strip() or None

    async def _optional_bytes(self, path: str) -> bytes | None:
        try:
            return await self._source.get_bytes(path)
        except IMDSNotFoundError:
            return None

    async def _events(self, path: str, max_age: float | None) -> list[MaintenanceEvent]:
        text = await optional_text(self._source, path, max_age)
        return [] if text is None else parse_maintenance_events(text, request_path(path))
