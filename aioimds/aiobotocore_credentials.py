"""The instance role's credentials, read by aioimds, in aiobotocore's credential chain.

    from aiobotocore.session import get_session
    from aioimds.aiobotocore_credentials import add_instance_role

    async with IMDSClient() as imds:
        session = get_session()
        add_instance_role(session, imds)
        async with session.create_client("s3", region_name=await imds.region()) as s3:
            ...

One :class:`~aioimds.IMDSClient` (one token, one connection pool) serves the application's own
metadata reads and the SDK's credentials. :func:`add_instance_role` puts an
:class:`AioInstanceRoleCredentialProvider` into the session's credential resolver with its
public API (``session.get_component("credential_provider")``, ``insert_before``), where
botocore's own IMDS reader (``iam-role``) was, and removes that one: environment variables, the
shared files, SSO and the container provider still come first, as in every AWS SDK.

The credentials it returns are aiobotocore ``AioRefreshableCredentials`` whose
``refresh_using`` awaits the :class:`~aioimds.CredentialsProvider` (cached, refreshed ahead of
expiry, static stability: :mod:`aioimds.credentials`), asked again
:data:`~aioimds.botocore_credentials.ADVISORY_REFRESH` before expiry. Needs aiobotocore
(``pip install aiobotocore``; aioimds does not depend on it).
"""

from __future__ import annotations

import logging
from typing import Any

from aiobotocore.credentials import AioRefreshableCredentials
from botocore.credentials import CredentialProvider

from . import CredentialsProvider, IMDSError
from .botocore_credentials import (
    ADVISORY_REFRESH,
    CANONICAL_NAME,
    MANDATORY_REFRESH,
    METHOD,
    REPLACES,
    fresh_metadata,
    insert_in_chain,
)
from .typed import Source

__all__ = ["AioInstanceRoleCredentialProvider", "add_instance_role"]

_log = logging.getLogger("aioimds.credentials")


class AioInstanceRoleCredentialProvider(CredentialProvider):  # type: ignore[misc]
    """An aiobotocore credential provider of the instance role's credentials, read by aioimds.

    Args:
        credentials: the :class:`~aioimds.CredentialsProvider` to read them through, or an
            open :class:`~aioimds.IMDSClient` to make one of.

    ``await load()`` returns ``AioRefreshableCredentials`` (method ``"aioimds"``), or ``None``
    when IMDS gives none (no role, not on EC2, IMDS disabled: the error is logged at debug
    level), so the resolver goes on to the next provider, as botocore's own do. :meth:`aclose`
    cancels a background refresh still running.
    """

    METHOD = METHOD
    CANONICAL_NAME = CANONICAL_NAME

    def __init__(self, credentials: CredentialsProvider | Source) -> None:
        super().__init__()
        self._credentials = (credentials if isinstance(credentials, CredentialsProvider)
                             else CredentialsProvider(credentials))

    def __repr__(self) -> str:
        return f"AioInstanceRoleCredentialProvider({self._credentials!r})"

    async def load(self) -> AioRefreshableCredentials | None:
        """The role credentials as refreshable aiobotocore credentials, or ``None`` when IMDS
        gives none."""
        try:
            metadata = await self.fetch()
        except IMDSError as exc:
            _log.debug("no instance role credentials from IMDS: %s", exc)
            return None
        return AioRefreshableCredentials.create_from_metadata(
            metadata=metadata, refresh_using=self.fetch, method=METHOD,
            advisory_timeout=ADVISORY_REFRESH, mandatory_timeout=MANDATORY_REFRESH)

    async def fetch(self) -> dict[str, str]:
        """:func:`~aioimds.botocore_credentials.fresh_metadata`: aiobotocore's
        ``refresh_using``.

        Raises: :class:`~aioimds.IMDSCredentialsError` or another
        :class:`~aioimds.IMDSError` when no valid credentials can be had.
        """
        return await fresh_metadata(self._credentials)

    async def aclose(self) -> None:
        """Cancel the credentials provider's background refresh, if one runs (call it before
        closing the client)."""
        await self._credentials.aclose()


def add_instance_role(session: Any, credentials: CredentialsProvider | Source, *,
                      before: str = REPLACES) -> AioInstanceRoleCredentialProvider:
    """Give an ``aiobotocore.session.AioSession`` the instance role's credentials from aioimds.

    Args:
        session: the aiobotocore session.
        credentials: as :class:`AioInstanceRoleCredentialProvider` (an open client, or a
            :class:`~aioimds.CredentialsProvider`).
        before: the provider it goes before; default ``"iam-role"``, the place of botocore's
            own IMDS provider, which is removed wherever it goes.

    Returns: the provider.
    Raises: ``botocore.exceptions.UnknownCredentialError`` when ``before`` names no provider.
    """
    provider = AioInstanceRoleCredentialProvider(credentials)
    insert_in_chain(session, provider, before)
    return provider
