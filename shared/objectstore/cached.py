"""A read cache for objects that never change once written, wrapped around any ObjectStore.

Timeline entries and base documents are written once under a key derived
from what they describe (docs/data-path.md, shared/bases.py): a listing
tells a reader which exist, and a cached body of a listed key is the body
the store holds. Caching them turns the second and later plans of a group
(an export plans twice: before and under its lease) into one LIST plus the
new entries only. Everything else passes through untouched. A put or delete
through this wrapper drops the cached copy, so the contract holds for a
single writer; other writers never change these objects' bytes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Iterator

from shared.objectstore.base import ObjectInfo, ObjectStore


def immutable_documents(key: str) -> bool:
    """Timeline entries and base documents (shared/keys.py)."""
    return key.endswith(".json") and ("/timeline/" in key or "/bases/" in key)


class CachedObjectStore(ObjectStore):
    def __init__(self, inner: ObjectStore, cacheable: Callable[[str], bool] = immutable_documents,
                 limit_bytes: int = 32 << 20) -> None:
        self.inner, self.cacheable, self.limit = inner, cacheable, limit_bytes
        self._items: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._used = 0
        self._lock = threading.Lock()
        self.hits = 0

    def _drop(self, bucket: str, key: str) -> None:
        with self._lock:
            old = self._items.pop((bucket, key), None)
            if old is not None:
                self._used -= len(old)

    def get(self, bucket: str, key: str) -> bytes:
        if not self.cacheable(key):
            return self.inner.get(bucket, key)
        with self._lock:
            body = self._items.get((bucket, key))
            if body is not None:
                self._items.move_to_end((bucket, key))
                self.hits += 1
                return body
        body = self.inner.get(bucket, key)
        with self._lock:
            if (bucket, key) not in self._items and len(body) <= self.limit // 4:
                self._items[(bucket, key)] = body
                self._used += len(body)
                while self._used > self.limit:
                    _, old = self._items.popitem(last=False)
                    self._used -= len(old)
        return body

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self._drop(bucket, key)
        self.inner.put(bucket, key, data)

    def delete(self, bucket: str, key: str) -> None:
        self._drop(bucket, key)
        self.inner.delete(bucket, key)

    def ensure_bucket(self, bucket: str) -> None:
        self.inner.ensure_bucket(bucket)

    def bucket_exists(self, bucket: str) -> bool:
        return self.inner.bucket_exists(bucket)

    def get_range(self, bucket: str, key: str, offset: int, length: int) -> bytes:
        return self.inner.get_range(bucket, key, offset, length)

    def stat(self, bucket: str, key: str) -> ObjectInfo:
        return self.inner.stat(bucket, key)

    def list(self, bucket: str, prefix: str = "", start_after: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(bucket, prefix, start_after)

    def list_prefixes(self, bucket: str, prefix: str = "") -> Iterator[str]:
        return self.inner.list_prefixes(bucket, prefix)
