"""Put a (large) local file into the object store without holding it in memory.

The ObjectStore interface has only whole-object ``put``; for MinIO we use the
minio client's multipart ``fput_object`` (64 MiB parts). Other adapters (the
in-memory one used by unit tests) get a single put.
"""

from __future__ import annotations

from pathlib import Path

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
    """Recovered images must never land on the journal's own keys."""
    from services.recovery.errors import BadRequest

    if not key or key.startswith("/") or key.startswith("groups/") or ".." in key.split("/") or len(key) > 900:
        raise BadRequest(f"object key {key!r} is not allowed: use a relative key outside 'groups/' "
                         "(default: recoveries/<group>/<volume>-<sequence>.img)")
    return key


__all__ = ["upload_file", "check_target_key", "ObjectStoreError"]
