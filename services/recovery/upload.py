"""Put a (large) local file into the object store without holding it in memory.

The ObjectStore interface has only whole-object ``put``; for MinIO we use the
minio client's multipart ``fput_object`` (64 MiB parts). Other adapters (the
in-memory one used by unit tests) get a single put.
"""

from __future__ import annotations

from pathlib import Path

from shared.errors import InvalidName
from shared.keys import check_client_key
from shared.objectstore import ObjectStore, ObjectStoreError
from shared.objectstore.minio import MinioObjectStore

PART_SIZE = 64 << 20


def upload_file(store: ObjectStore, bucket: str, key: str, path: Path) -> None:
    put_file = getattr(store, "put_file", None)
    if put_file is not None:
        put_file(bucket, key, path)
    elif isinstance(store, MinioObjectStore):
        # The adapter has no multipart entry point yet; use its client.
        store._call(f"upload {bucket}/{key}", store._c.fput_object, bucket, key, str(path),
                    content_type="application/octet-stream", part_size=PART_SIZE)
    else:
        store.put(bucket, key, Path(path).read_bytes())


def check_target_key(key: str) -> str:
    """``key`` if recovered images may be written there (only under ``recoveries/``), else BadRequest (400).

    Recovered images must never land on Dialback's own objects (journal,
    bases, leases, shared chunks); the rule lives in shared.keys.
    """
    from services.recovery.errors import BadRequest

    try:
        return check_client_key(key)
    except InvalidName as err:
        raise BadRequest(str(err)) from err


__all__ = ["upload_file", "check_target_key", "ObjectStoreError"]
