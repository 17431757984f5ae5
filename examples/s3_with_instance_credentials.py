"""Hand the instance role's credentials, refreshed by aioimds, to an aiobotocore S3 client.

    pip install aiobotocore        # or pip install 'aioimds[conformance]'
    python examples/s3_with_instance_credentials.py                 # endpoint from the environment
    python examples/s3_with_instance_credentials.py --endpoint http://127.0.0.1:1338
    python examples/s3_with_instance_credentials.py --bucket my-bucket   # also list 10 keys

aiobotocore can read IMDS itself; this shares one IMDSClient (one token, one connection pool)
between your own metadata reads and the SDK's credentials.
:func:`aioimds.aiobotocore_credentials.add_instance_role` puts a credential provider into the
session's chain (through ``session.get_component("credential_provider")``) in place of
botocore's own IMDS reader, after environment variables and the shared files as in every AWS
SDK; the SDK asks it again shortly before the credentials expire. The region comes from IMDS
too (cached: it cannot change). Nothing is sent to S3 unless ``--bucket`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from aiobotocore.session import AioSession, get_session

from aioimds import IMDSClient
from aioimds.aiobotocore_credentials import add_instance_role


def session_with_instance_credentials(imds: IMDSClient) -> AioSession:
    """An aiobotocore session whose instance role credentials come from ``imds``."""
    session = get_session()
    add_instance_role(session, imds)
    return session


async def main(endpoint: str | None, bucket: str | None) -> None:
    async with IMDSClient(endpoint=endpoint) if endpoint else IMDSClient() as imds:
        region = await imds.region()
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
