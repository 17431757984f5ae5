"""Hand the instance role's credentials, refreshed by aioimds, to an aiobotocore S3 client.

    pip install aiobotocore
    python examples/s3_with_instance_credentials.py                 # endpoint from the environment
    python examples/s3_with_instance_credentials.py --endpoint http://127.0.0.1:1338
    python examples/s3_with_instance_credentials.py --bucket my-bucket   # also list 10 keys

aiobotocore can read IMDS itself; this shows how to share one IMDSClient (one token, one
connection pool) between your own metadata reads and the SDK's credentials. A credential
provider is put first in the session's chain: it returns refreshable credentials whose
``refresh_using`` awaits :meth:`aioimds.CredentialsProvider.botocore_metadata`, so
aiobotocore asks aioimds again shortly before they expire. The region comes from IMDS too.
Nothing is sent to S3 unless ``--bucket`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from aiobotocore.credentials import AioRefreshableCredentials
from aiobotocore.session import AioSession, get_session
from botocore.credentials import CredentialProvider

from aioimds import IMDSClient
from aioimds.typed.credentials import CredentialsProvider


class InstanceRoleProvider(CredentialProvider):  # type: ignore[misc]
    """A botocore credential provider backed by an aioimds :class:`CredentialsProvider`."""

    METHOD = "aioimds"
    CANONICAL_NAME = "customAioimds"  # botocore asks custom providers to start with "custom"

    def __init__(self, provider: CredentialsProvider) -> None:
        super().__init__()
        self._provider = provider

    async def load(self) -> AioRefreshableCredentials:
        return AioRefreshableCredentials.create_from_metadata(
            metadata=await self._provider.botocore_metadata(),
            refresh_using=self._provider.botocore_metadata,
            method=self.METHOD,
        )


def session_with_instance_credentials(imds: IMDSClient) -> AioSession:
    """An aiobotocore session whose credentials come from ``imds`` before anything else."""
    session = get_session()
    resolver = session.get_component("credential_provider")
    resolver.insert_before("env", InstanceRoleProvider(CredentialsProvider(imds)))
    return session


async def main(endpoint: str | None, bucket: str | None) -> None:
    async with IMDSClient(endpoint=endpoint) if endpoint else IMDSClient() as imds:
        region = await imds.get("meta-data/placement/region")
        session = session_with_instance_credentials(imds)
        async with session.create_client("s3", region_name=region) as s3:
            creds = await (await session.get_credentials()).get_frozen_credentials()
            print(f"S3 client for {region} with {creds.access_key} (method aioimds)")
            if bucket:
                page: dict[str, Any] = await s3.list_objects_v2(Bucket=bucket, MaxKeys=10)
                for item in page.get("Contents", []):
                    print(item["Key"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoint", help="IMDS endpoint (default: from the environment)")
    parser.add_argument("--bucket", help="list up to 10 keys of this bucket (a real S3 call)")
    args = parser.parse_args()
    asyncio.run(main(args.endpoint, args.bucket))
