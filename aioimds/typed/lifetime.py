"""Which typed values are cached by default, and for how long: what cannot change while the
instance runs.

A typed view passes its path's :func:`default_max_age` to the client's read unless the caller
gives ``max_age``; the client keeps the answer (:mod:`aioimds.coalesce`) unless it was made
with ``cache=False``. Everything not listed here is read fresh by default: spot and rebalance
notices, maintenance events, the lifecycle state, network interfaces, public and private
addresses, tags, public keys, IAM info (an instance profile can be replaced on a running
instance) and role credentials (:class:`~aioimds.CredentialsProvider` keeps its own rules).

The reasoning, from the EC2 user guide:

- **Fixed for the life of the instance**, cached for good (:data:`FOREVER`): the instance ID
  (an instance "retains its instance ID" through stop and start: "Stop and start your
  instance"), the AMI it was launched from and its launch index, its Region, Availability Zone
  and zone ID (an instance never moves between zones: moving means launching a new one), and
  the account (the identity document's ``accountId``).
- **Fixed while the instance runs**, cached for :data:`RUNNING_MAX_AGE`: the instance type,
  kernel and RAM disk can be changed "only when it is stopped" (the API answers
  ``IncorrectInstanceState`` otherwise), and the placement group, partition and host only
  with the instance stopped too (``ModifyInstancePlacement``); the identity document carries
  the type, kernel, RAM disk and ``pendingTime`` (the last start). A plain stop ends every
  process, but hibernation freezes the processes and resumes them, and a hibernated instance
  is stopped: "While your instance is in the stopped state, you can modify certain attributes
  of the instance, including the instance type or size" ("How Amazon EC2 instance hibernation
  works"). So a process may wake on another instance type; a bounded age lets it see the
  new value within a minute of running, for one request a minute.
"""

from __future__ import annotations

from .. import catalogue as c
from ..coalesce import FOREVER

__all__ = ["CACHED", "FOREVER", "RUNNING_MAX_AGE", "default_max_age"]

RUNNING_MAX_AGE = 60.0
"""Seconds a value fixed only while the instance runs is taken from the cache (see above)."""

CACHED: dict[str, float] = {
    c.INSTANCE_ID: FOREVER,
    c.AMI_ID: FOREVER,
    c.AMI_LAUNCH_INDEX: FOREVER,
    c.REGION: FOREVER,
    c.AVAILABILITY_ZONE: FOREVER,
    c.AVAILABILITY_ZONE_ID: FOREVER,
    c.INSTANCE_TYPE: RUNNING_MAX_AGE,
    c.IDENTITY_DOCUMENT: RUNNING_MAX_AGE,
    c.PLACEMENT + "group-name": RUNNING_MAX_AGE,
    c.PLACEMENT + "host-id": RUNNING_MAX_AGE,
    c.PLACEMENT + "partition-number": RUNNING_MAX_AGE,
}
"""Path (relative to ``latest/``) -> the ``max_age`` its typed view reads it with by default."""


def default_max_age(path: str, max_age: float | None = None) -> float | None:
    """``max_age`` when given, else the path's entry in :data:`CACHED`, else ``None`` (read
    fresh)."""
    return max_age if max_age is not None else CACHED.get(path)
