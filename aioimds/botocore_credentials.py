"""The instance role's credentials, read by aioimds, in botocore's (and boto3's) credential chain.

    import boto3, botocore.session
    from aioimds.botocore_credentials import add_instance_role

    core = botocore.session.get_session()
    provider = add_instance_role(core)          # IMDSClient settings as keywords, if any
    s3 = boto3.Session(botocore_session=core).client("s3")
    ...
    provider.close()                            # or at interpreter exit

:func:`add_instance_role` puts an :class:`InstanceRoleCredentialProvider` into the session's
credential resolver with its public API (``session.get_component("credential_provider")``,
``insert_before``), where botocore's own IMDS reader (``iam-role``) was, and removes that one,
so the service is asked by one client: environment variables, the shared files, SSO and the
container provider still come first, as in every AWS SDK.

botocore is synchronous: the provider runs one :class:`~aioimds.IMDSClient` and its
:class:`~aioimds.CredentialsProvider` on an event loop in a thread of its own (started on first
use) and waits for it there, so it works the same from plain threads and from code that runs
inside another event loop. botocore's ``RefreshableCredentials`` asks it again
:data:`ADVISORY_REFRESH` before expiry, when the provider reads new credentials (see
:mod:`aioimds.credentials` for the refresh and static-stability rules).

Needs botocore (``pip install botocore``; aioimds does not depend on it); importing this module
without it raises ImportError.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from botocore.credentials import CredentialProvider, RefreshableCredentials

from . import (
    CREDENTIALS_REFRESH_MARGIN,
    CredentialsProvider,
    IMDSClient,
    IMDSConfig,
    IMDSError,
    RoleCredentials,
    as_botocore_metadata,
)

Clock = Callable[[], datetime]
"""Now, as an aware UTC datetime (:class:`~aioimds.CredentialsProvider`'s ``clock``)."""

__all__ = [
    "ADVISORY_REFRESH",
    "CANONICAL_NAME",
    "MANDATORY_REFRESH",
    "METHOD",
    "REPLACES",
    "InstanceRoleCredentialProvider",
    "add_instance_role",
    "fresh_metadata",
    "insert_in_chain",
    "sdk_metadata",
]

_log = logging.getLogger("aioimds.credentials")

METHOD = "aioimds"
"""The provider's name in the chain and the ``method`` of the credentials it returns."""
CANONICAL_NAME = "customAioimds"
"""botocore asks providers it does not ship to start their canonical name with ``custom``."""
REPLACES = "iam-role"
"""botocore's own instance-metadata provider: :func:`add_instance_role` takes its place."""
ADVISORY_REFRESH = int(CREDENTIALS_REFRESH_MARGIN.total_seconds())
"""Seconds before expiry when the SDK asks for new credentials (botocore's default is 15
minutes): the moment :class:`~aioimds.CredentialsProvider` reads new ones, so it is not asked
in vain for ten minutes."""
MANDATORY_REFRESH = 60
"""Seconds before expiry after which the SDK blocks for new credentials and raises when it
cannot get them (botocore: 10 minutes). The provider keeps serving valid cached credentials
when IMDS fails, so an error reaches the SDK only once they are about to expire."""


def sdk_metadata(creds: RoleCredentials) -> dict[str, str]:
    """:func:`~aioimds.as_botocore_metadata` plus ``account_id`` when the credentials document
    gives it (the extended document does): the dict botocore's and aiobotocore's
    ``create_from_metadata`` and ``refresh_using`` take."""
    meta = as_botocore_metadata(creds)
    if creds.account_id is not None:
        meta["account_id"] = creds.account_id
    return meta


async def fresh_metadata(credentials: CredentialsProvider) -> dict[str, str]:
    """:func:`sdk_metadata` of the newest valid credentials: when a refresh is due, the SDK's
    ``refresh_using`` waits for it (one IMDS read, shared) instead of taking the credentials it
    is replacing, since the SDK asks exactly when it wants new ones. Static stability as in
    :class:`~aioimds.CredentialsProvider`: a failed refresh serves the cached ones.

    Raises: :class:`~aioimds.IMDSCredentialsError` or another :class:`~aioimds.IMDSError`
    when no credentials were ever fetched.
    """
    await credentials.get()  # starts the refresh when one is due
    await credentials.wait_for_refresh()
    return sdk_metadata(await credentials.get())


class InstanceRoleCredentialProvider(CredentialProvider):  # type: ignore[misc]
    """A botocore credential provider of the instance role's credentials, read by aioimds.

    Args:
        config: the :class:`~aioimds.IMDSConfig` of the client it runs (default: from the
            environment, :meth:`IMDSConfig.from_environment`).
        clock: the :class:`~aioimds.CredentialsProvider`'s clock (default: the system's).
        **overrides: single :class:`~aioimds.IMDSConfig` settings (``endpoint=``, ...).

    ``load()`` returns botocore ``RefreshableCredentials`` (method :data:`METHOD`), or
    ``None`` when IMDS gives none (no role, not on EC2, IMDS disabled: the error is logged at
    debug level), so the resolver goes on to the next provider, as botocore's own do.
    :meth:`close` stops the thread and closes the client; it is also called at exit.
    """

    METHOD = METHOD
    CANONICAL_NAME = CANONICAL_NAME

    def __init__(self, config: IMDSConfig | None = None, *,
                 clock: Clock | None = None, **overrides: Any) -> None:
        super().__init__()
        base = config if config is not None else IMDSConfig.from_environment()
        self._config = base.with_overrides(**overrides)
        self._clock = clock
        self._guard = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._imds: IMDSClient | None = None
        self._credentials: CredentialsProvider | None = None

    def __repr__(self) -> str:
        state = "running" if self._thread is not None else "idle"
        return f"InstanceRoleCredentialProvider(endpoint={self._config.base_url!r}, {state})"

    def load(self) -> RefreshableCredentials | None:
        """The role credentials as refreshable botocore credentials, or ``None`` when IMDS
        gives none."""
        try:
            metadata = self.fetch()
        except IMDSError as exc:
            _log.debug("no instance role credentials from IMDS: %s", exc)
            return None
        return RefreshableCredentials.create_from_metadata(
            metadata=metadata, refresh_using=self.fetch, method=METHOD,
            advisory_timeout=ADVISORY_REFRESH, mandatory_timeout=MANDATORY_REFRESH)

    def fetch(self) -> dict[str, str]:
        """:func:`fresh_metadata`, run on the provider's thread: botocore's
        ``refresh_using``.

        Raises: :class:`~aioimds.IMDSCredentialsError` or another
        :class:`~aioimds.IMDSError` when no valid credentials can be had.
        """
        loop = self._start()
        return asyncio.run_coroutine_threadsafe(self._metadata(), loop).result()

    async def _metadata(self) -> dict[str, str]:
        if self._credentials is None:
            self._imds = IMDSClient(self._config)
            await self._imds.open()
            self._credentials = (CredentialsProvider(self._imds) if self._clock is None
                                 else CredentialsProvider(self._imds, clock=self._clock))
        return await fresh_metadata(self._credentials)

    async def _close(self) -> None:
        credentials, imds, self._credentials, self._imds = (
            self._credentials, self._imds, None, None)
        if credentials is not None:
            await credentials.aclose()
        if imds is not None:
            await imds.close()

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._guard:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, daemon=True,
                                          name="aioimds-credentials")
                thread.start()
                self._loop, self._thread = loop, thread
                atexit.register(self.close)
            return self._loop

    def close(self) -> None:
        """Close the client and stop the thread; a later :meth:`load` starts them again.
        Closing twice is harmless."""
        with self._guard:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return
        atexit.unregister(self.close)
        asyncio.run_coroutine_threadsafe(self._close(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()

    def __enter__(self) -> InstanceRoleCredentialProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def insert_in_chain(session: Any, provider: Any, before: str) -> None:
    """Put ``provider`` into ``session``'s credential resolver before the provider named
    ``before`` and remove botocore's own IMDS provider (:data:`REPLACES`)."""
    resolver = session.get_component("credential_provider")
    resolver.insert_before(before, provider)
    resolver.remove(REPLACES)  # by name: the inserted provider's METHOD is another


def add_instance_role(session: Any, config: IMDSConfig | None = None, *,
                      before: str = REPLACES, clock: Clock | None = None,
                      **overrides: Any) -> InstanceRoleCredentialProvider:
    """Give a ``botocore.session.Session`` the instance role's credentials from aioimds.

    Args:
        session: the botocore session (boto3: ``boto3.Session(botocore_session=session)``).
        config, clock, **overrides: as :class:`InstanceRoleCredentialProvider`.
        before: the provider it goes before (``session.get_component("credential_provider")
            .available_methods``); default :data:`REPLACES`, the place of botocore's own IMDS
            provider, which is removed wherever it goes.

    Returns: the provider (call its ``close()`` when done with the session).
    Raises: ``botocore.exceptions.UnknownCredentialError`` when ``before`` names no provider.
    """
    provider = InstanceRoleCredentialProvider(config, clock=clock, **overrides)
    insert_in_chain(session, provider, before)
    return provider
