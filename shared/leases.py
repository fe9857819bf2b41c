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

A reader that may outlive its TTL keeps the lease alive with a
:class:`LeaseKeeper` (renewal every TTL/3, in a background thread or driven
by the caller's own ticker). A lease not renewed for TTL/2 is *lapsed*: the
keeper reports it (:meth:`LeaseKeeper.check` raises :class:`LeaseLapsed`)
so the reader stops before GC may delete what it reads, at TTL, instead of
serving or returning data that can vanish under it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

from shared import keys
from shared.errors import DialbackError
from shared.objectstore import ObjectNotFound, ObjectStore

Clock = Callable[[], float]
log = logging.getLogger(__name__)


class LeaseError(DialbackError):
    """A lease could not be written, renewed or parsed."""


class LeaseLapsed(LeaseError):
    """A lease went unrenewed for half its TTL: what it protects may be garbage-collected at TTL."""


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
    keeper: "LeaseKeeper | None" = field(default=None, repr=False, compare=False)

    @property
    def key(self) -> str:
        return keys.lease_key(self.group, self.id)

    def renew(self) -> None:
        """Push the expiry ``ttl_s`` from now (a long reader calls this before half its TTL passed)."""
        if self.released:
            raise LeaseError(f"lease {self.id} was released; acquire a new one")
        expires_ns = int((self.clock() + self.ttl_s) * 1e9)
        doc = {"id": self.id, "base_seq": self.base_seq, "from_seq": self.from_seq,
               "expires_ns": expires_ns, "holder": self.holder}
        self.store.put(self.bucket, self.key, json.dumps(doc, separators=(",", ":")).encode())
        self.expires_ns = expires_ns  # only once durable: a failed renewal leaves the old expiry

    def keep_alive(self) -> "LeaseKeeper":
        """Start renewing this lease every TTL/3 in the background (once; later calls return the same keeper).
        ``release`` stops it."""
        if self.keeper is None:
            self.keeper = LeaseKeeper(self).start()
        return self.keeper

    def release(self) -> None:
        if self.keeper is not None:
            self.keeper.stop()
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


class LeaseKeeper:
    """Keeps ``lease`` alive while a reader reads; says when it lapsed.

    ``renew_now`` renews once and records the outcome (a failure is logged, never raised).
    ``start`` runs ``renew_now`` every ``ttl/3`` in a daemon thread until ``stop``
    (or the ``with`` block ends; the lease itself is released by its owner).
    Lapsed = no successful renewal for ``ttl/2`` (``monotonic`` clock): sticky, since
    the reader cannot know what GC removed meanwhile.
    """

    def __init__(self, lease: Lease, monotonic: Clock = time.monotonic) -> None:
        self.lease, self.monotonic = lease, monotonic
        self.renewed_at = monotonic()  # acquire() just wrote it
        self.last_error: str | None = None
        self.lapsed_msg: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def period_s(self) -> float:
        return self.lease.ttl_s / 3

    def renew_now(self) -> bool:
        """One renewal; False (and logged) when it failed. No renewal once lapsed or released."""
        if self.lapsed or self.lease.released:
            return False
        try:
            self.lease.renew()
        except Exception as err:  # store down, refused, ...: retried next period, lapses at ttl/2
            self.last_error = f"{type(err).__name__}: {err}"
            log.warning("renewing lease %s (%s) failed: %s", self.lease.id, self.lease.holder, self.last_error)
            return False
        self.renewed_at, self.last_error = self.monotonic(), None
        return True

    @property
    def lapsed(self) -> bool:
        if self.lapsed_msg is None and self.monotonic() - self.renewed_at >= self.lease.ttl_s / 2:
            self.lapsed_msg = (
                f"lease {self.lease.id} of group {self.lease.group!r} ({self.lease.holder or 'reader'}) was not "
                f"renewed for {self.lease.ttl_s / 2:.0f} s, half its TTL (last error: {self.last_error or 'none'}); "
                "garbage collection may delete what it protects, so reading stopped. Check the object store, "
                "then start the read again")
        return self.lapsed_msg is not None

    def check(self) -> None:
        """Raise :class:`LeaseLapsed` once the lease has lapsed."""
        if self.lapsed:
            raise LeaseLapsed(self.lapsed_msg)

    def start(self) -> "LeaseKeeper":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"lease-{self.lease.id[:8]}", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        wait = self.period_s
        while not self._stop.wait(wait):
            # after a failure retry sooner: one lost request must not lapse the lease
            wait = self.period_s if self.renew_now() else self.period_s / 4
            if self.lapsed:
                log.error("%s", self.lapsed_msg)
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)  # a renewal in flight finishes; the thread is a daemon anyway
            self._thread = None

    def __enter__(self) -> "LeaseKeeper":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
