"""Leases: a reader (recovery, instant-access export, verify) protects what it reads from GC.

A lease ``groups/<g>/leases/<id>.json`` = ``{"id", "base_seq", "from_seq",
"expires_ns", "holder"}`` says: keep base ``base_seq`` (0 = none) with every
chunk it references, and every journal segment holding a record after
``from_seq``, until ``expires_ns`` (wall clock, ns since the epoch).
GC skips all of that while the lease is unexpired.

Protocol for a reader (closes the race with a GC already running): plan,
acquire a lease for the plan's base and start, then plan AGAIN and use the
second plan only if it still starts from the leased base (else release and
retry). GC lists leases again after it has hidden what it will delete, so
anything a reader sees after its lease exists stays readable.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

from shared import keys
from shared.errors import DialbackError
from shared.objectstore import ObjectNotFound, ObjectStore

Clock = Callable[[], float]


class LeaseError(DialbackError):
    """A lease could not be written, renewed or parsed."""


@dataclass(frozen=True)
class LeaseInfo:
    id: str
    base_seq: int
    from_seq: int
    expires_ns: int
    holder: str = ""


@dataclass
class Lease:
    store: ObjectStore
    bucket: str
    group: str
    base_seq: int
    from_seq: int
    ttl_s: float
    holder: str = ""
    clock: Clock = time.time
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    expires_ns: int = 0
    released: bool = False

    @property
    def key(self) -> str:
        return keys.lease_key(self.group, self.id)

    def renew(self) -> None:
        """Push the expiry ``ttl_s`` from now (a long reader calls this before half its TTL passed)."""
        if self.released:
            raise LeaseError(f"lease {self.id} was released; acquire a new one")
        self.expires_ns = int((self.clock() + self.ttl_s) * 1e9)
        doc = {"id": self.id, "base_seq": self.base_seq, "from_seq": self.from_seq,
               "expires_ns": self.expires_ns, "holder": self.holder}
        self.store.put(self.bucket, self.key, json.dumps(doc, separators=(",", ":")).encode())

    def release(self) -> None:
        if not self.released:
            self.store.delete(self.bucket, self.key)
            self.released = True

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def acquire(store: ObjectStore, bucket: str, group: str, base_seq: int, from_seq: int, ttl_s: float = 600.0,
            holder: str = "", clock: Clock = time.time) -> Lease:
    """Write a lease protecting base ``base_seq`` (0 = none) and the journal after ``from_seq``."""
    if base_seq < 0 or from_seq < 0 or ttl_s <= 0:
        raise LeaseError(f"bad lease: base_seq={base_seq} from_seq={from_seq} ttl_s={ttl_s} "
                         "(sequences >= 0, ttl > 0)")
    lease = Lease(store, bucket, group, base_seq, from_seq, ttl_s, holder, clock)
    lease.renew()
    return lease


def live_leases(store: ObjectStore, bucket: str, group: str, now_ns: int | None = None) -> list[LeaseInfo]:
    """Unexpired leases of a group. A malformed lease is treated as protecting everything (from 0)."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    out = []
    for info in store.list(bucket, keys.leases_prefix(group)):
        try:
            doc = json.loads(store.get(bucket, info.key))
            lease = LeaseInfo(str(doc["id"]), int(doc["base_seq"]), int(doc["from_seq"]), int(doc["expires_ns"]),
                              str(doc.get("holder", "")))
        except ObjectNotFound:
            continue
        except (ValueError, KeyError, TypeError):
            # Safer to keep too much than to delete what an unknown reader needs.
            lease = LeaseInfo(info.key, 0, 0, now_ns + 1)
        if lease.expires_ns > now_ns:
            out.append(lease)
    return out


def expired_lease_keys(store: ObjectStore, bucket: str, group: str, now_ns: int | None = None) -> list[str]:
    """Keys of expired leases (left behind by crashed readers): GC removes them."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    live = {keys.lease_key(group, lease.id) for lease in live_leases(store, bucket, group, now_ns)}
    return [i.key for i in store.list(bucket, keys.leases_prefix(group)) if i.key not in live]
