"""In-memory ObjectStore for unit tests. Same contract as the MinIO adapter."""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterator

from shared.objectstore.base import ObjectInfo, ObjectNotFound, ObjectStore


class MemoryObjectStore(ObjectStore):
    def __init__(self, clock: Callable[[], int] = time.time_ns) -> None:
        """``clock``: the store's clock for ``modified_ns`` (tests inject one to age objects)."""
        self._buckets: dict[str, dict[str, bytes]] = {}
        self._mtimes: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self.clock = clock

    def _bucket(self, bucket: str) -> dict[str, bytes]:
        try:
            return self._buckets[bucket]
        except KeyError:
            raise ObjectNotFound(f"bucket {bucket!r} does not exist") from None

    def ensure_bucket(self, bucket: str) -> None:
        with self._lock:
            self._buckets.setdefault(bucket, {})

    def bucket_exists(self, bucket: str) -> bool:
        return bucket in self._buckets

    def put(self, bucket: str, key: str, data: bytes) -> None:
        with self._lock:
            self._bucket(bucket)[key] = bytes(data)
            self._mtimes[(bucket, key)] = self.clock()

    def get(self, bucket: str, key: str) -> bytes:
        try:
            return self._bucket(bucket)[key]
        except KeyError:
            raise ObjectNotFound(f"object {key!r} not found in bucket {bucket!r}") from None

    def get_range(self, bucket: str, key: str, offset: int, length: int) -> bytes:
        return self.get(bucket, key)[offset: offset + length]

    def stat(self, bucket: str, key: str) -> ObjectInfo:
        size = len(self.get(bucket, key))
        return ObjectInfo(key, size, self._mtimes.get((bucket, key), 0))

    def list(self, bucket: str, prefix: str = "", start_after: str = "") -> Iterator[ObjectInfo]:
        with self._lock:
            items = sorted((k, len(v), self._mtimes.get((bucket, k), 0)) for k, v in self._bucket(bucket).items()
                           if k.startswith(prefix))
        for key, size, mtime in items:
            if key > start_after:
                yield ObjectInfo(key, size, mtime)

    def delete(self, bucket: str, key: str) -> None:
        with self._lock:
            self._bucket(bucket).pop(key, None)
            self._mtimes.pop((bucket, key), None)
