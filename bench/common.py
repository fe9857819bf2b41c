"""What the object-store benchmarks share: where the store comes from, and cleaning up after."""

from __future__ import annotations

import sys

from shared.config import CommonSettings
from shared.objectstore import ObjectStore
from shared.objectstore.factory import store_from_settings


def open_store(start_minio: bool):
    """(server or None, store, endpoint): a throwaway MinIO (tests/servers.py), or the one the settings name."""
    if start_minio:
        from tests.servers import start_minio as start

        server = start()
        return server, server.store(), server.endpoint
    s = CommonSettings()
    return None, store_from_settings(s), s.s3_endpoint


def close_store(store: ObjectStore, bucket: str, server=None) -> None:
    """Delete what the bench wrote to ``bucket``; stop the throwaway MinIO if there is one."""
    try:
        for info in list(store.list(bucket)):
            store.delete(bucket, info.key)
    except Exception as e:  # noqa: BLE001 - cleanup only, the figures are already printed
        print(f"cleanup of {bucket} failed: {e}", file=sys.stderr)
    if server is not None:
        from tests.servers import cleanup

        cleanup(server)
