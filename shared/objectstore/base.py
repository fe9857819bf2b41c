"""ObjectStore: the contract.

* ``put`` replaces the whole object atomically; when it returns, the object is
  durable and visible to ``get``/``stat``/``list``. Putting the same key twice
  with the same bytes is harmless (idempotent).
* ``get``/``get_range``/``stat`` on a missing key raise :class:`ObjectNotFound`.
* ``delete`` of a missing key succeeds (idempotent).
* ``list`` yields objects whose key starts with ``prefix`` in ascending key
  order, so zero-padded keys list in time order.
* ``list`` and ``stat`` report ``modified_ns``: when the object was last
  written, by the store's clock (ns since the epoch). GC uses it to spare
  objects younger than a grace period (services/retention/gc.py).
* ``list_prefixes`` yields the distinct "directories" one level below
  ``prefix`` (each ending in ``/``), ascending, without listing every object
  under them where the store can (S3 delimiter listing).
* Errors are classified: :class:`ObjectNotFound`, :class:`TransientStoreError`
  (worth retrying) or :class:`PermanentStoreError` (not).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterator

from shared.errors import DialbackError


class ObjectStoreError(DialbackError):
    pass


class ObjectNotFound(ObjectStoreError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0] if self.args else "object not found"


class TransientStoreError(ObjectStoreError):
    """The store could not be reached or was overloaded; retrying may succeed."""


class PermanentStoreError(ObjectStoreError):
    """The request was refused; retrying the same request will not help."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified_ns: int  # last write, store clock, ns since the epoch


class ObjectStore(ABC):
    @abstractmethod
    def ensure_bucket(self, bucket: str) -> None:
        """Create the bucket if it does not exist (idempotent)."""

    @abstractmethod
    def bucket_exists(self, bucket: str) -> bool: ...

    @abstractmethod
    def put(self, bucket: str, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get(self, bucket: str, key: str) -> bytes: ...

    @abstractmethod
    def get_range(self, bucket: str, key: str, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset`` (fewer only at the end of the object)."""

    @abstractmethod
    def stat(self, bucket: str, key: str) -> ObjectInfo: ...

    @abstractmethod
    def list(self, bucket: str, prefix: str = "", start_after: str = "") -> Iterator[ObjectInfo]: ...

    @abstractmethod
    def delete(self, bucket: str, key: str) -> None: ...

    def list_prefixes(self, bucket: str, prefix: str = "") -> Iterator[str]:
        """``prefix + name + "/"`` for every name with an object under it, ascending (generic: one full listing)."""
        last = None
        for info in self.list(bucket, prefix):
            rest = info.key[len(prefix):]
            if "/" in rest:
                sub = prefix + rest.split("/", 1)[0] + "/"
                if sub != last:
                    last = sub
                    yield sub

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self.stat(bucket, key)
        except ObjectNotFound:
            return False
        return True
