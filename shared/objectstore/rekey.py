"""The re-key job (`dialback keys rekey`): rewrite a bucket's objects under its newest data key generation.

Contract:
* Every object sealed in DBE1 or under an older generation is read (and so
  authenticated), written again under the newest generation at the same key
  (content-addressed chunks keep their key: the plaintext, hence its hash, is
  unchanged), read back and compared with the plaintext: a mismatch is put
  again once, then raises RekeyError with the key, before anything else. If
  the header read back is not the one the job wrote, a service wrote the
  object after the job: that write is kept, never overwritten again.
* Idempotent and resumable: an object already in DBE2 under the newest
  generation costs one header read and is left alone; a stopped job is run
  again (optionally from ``start_after``, the last key a run reported).
* An object rewritten by a service while the job read it (its header changed)
  is left as that service wrote it (newer, and sealed under the newest
  generation); one deleted meanwhile (GC) is skipped, not resurrected.
* Leases (``groups/<g>/leases/*.json``) are never rewritten: their holder
  renews them (under the newest generation) every TTL/3 and GC deletes expired
  ones, while a re-key racing a renewal could put back an older expiry and let
  GC delete what a reader still needs. They are counted in ``leases_waiting``.
* An object that does not open (damaged before the job) is left as it is and
  reported in ``damaged``; `dialback verify` tells what depends on it.
* :func:`retire_old_generations` removes the older generations' keys from the
  keyring only after a fresh scan finds no object sealed under them.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from shared import keys
from shared.objectstore.base import ObjectInfo, ObjectNotFound, PermanentStoreError
from shared.objectstore.encrypted import EncryptedObjectStore
from shared.objectstore.sealed import VERSION, Header, IntegrityError, parse_header


class RekeyError(PermanentStoreError):
    """The re-key job could not complete safely; the message says which object and what to do."""


@dataclass
class RekeyStats:
    newest: int = 0  # the generation everything is rewritten into
    scanned: int = 0
    current: int = 0  # already DBE2 under the newest generation
    rewritten: int = 0
    bytes_rewritten: int = 0
    changed_meanwhile: int = 0  # rewritten or deleted by a service while the job read them
    leases_waiting: int = 0  # leases under an old generation: renewed or removed by their holder / GC, not by us
    last_key: str = ""
    damaged: list = field(default_factory=list)  # (key, error) of objects that do not open: left as they are
    formats: Counter = field(default_factory=Counter)  # (version, generation) -> objects found before the job


def is_current(h: Header, newest: int) -> bool:
    return h.version == VERSION and h.key_id == newest


def _same_header(store: EncryptedObjectStore, bucket: str, key: str, h: Header) -> bool:
    try:
        return store.header(bucket, key).raw == h.raw  # the salt (DBE2) or nonce prefix (DBE1) is fresh per write
    except ObjectNotFound:
        return False


def _rewrite(store: EncryptedObjectStore, bucket: str, key: str, plain: bytes) -> bool:
    """Put ``plain`` sealed under the newest generation and read it back; False if a service overwrote it since."""
    digest = hashlib.sha256(plain).digest()
    for _ in (1, 2):
        blob = store.seal(bucket, key, plain)
        store.inner.put(bucket, key, blob)
        try:
            if store.header(bucket, key).raw != blob[:len(parse_header(blob, key).raw)]:
                return False  # not ours any more: a service wrote it after us (theirs is newer), keep it
            if hashlib.sha256(store.get(bucket, key)).digest() == digest:
                return True
        except ObjectNotFound:
            return False  # deleted (GC) right after our put
        except PermanentStoreError:
            pass
    raise RekeyError(f"object {bucket}/{key} did not read back as written after re-keying it (twice): the object "
                     "store may be damaging writes; check its health and run `dialback verify` before retrying")


def _rekey_one(store: EncryptedObjectStore, bucket: str, key: str, stats: RekeyStats) -> None:
    try:
        h = store.header(bucket, key)
    except ObjectNotFound:
        stats.changed_meanwhile += 1  # deleted by GC since the listing
        return
    stats.formats[(h.version, h.key_id)] += 1
    if is_current(h, stats.newest):
        stats.current += 1
        return
    if keys.is_lease_key(key):
        stats.leases_waiting += 1
        return
    try:
        plain = store.get(bucket, key)  # authenticates under its old generation
    except ObjectNotFound:
        plain = None
    except IntegrityError as err:  # damaged before the job: rewriting would not repair it
        stats.damaged.append((key, str(err)))
        return
    if plain is None or not _same_header(store, bucket, key, h):
        stats.changed_meanwhile += 1  # a service wrote (or deleted) it since: theirs is newer
        return
    if not _rewrite(store, bucket, key, plain):
        stats.changed_meanwhile += 1
        return
    stats.rewritten += 1
    stats.bytes_rewritten += len(plain)


def rekey_bucket(store: EncryptedObjectStore, bucket: str, start_after: str = "",
                 progress: Callable[[RekeyStats, ObjectInfo], None] | None = None) -> RekeyStats:
    """Rewrite every object of ``bucket`` not yet DBE2 under the newest generation; returns what was done."""
    stats = RekeyStats(newest=store.data_keys.current(bucket)[0])
    for info in store.inner.list(bucket, "", start_after):
        stats.scanned += 1
        _rekey_one(store, bucket, info.key, stats)
        stats.last_key = info.key
        if progress:
            progress(stats, info)
    return stats


def scan_formats(store: EncryptedObjectStore, bucket: str) -> Counter:
    """(format version, generation) -> number of objects of ``bucket`` sealed so (one header read each)."""
    found: Counter = Counter()
    for info in store.inner.list(bucket):
        try:
            h = store.header(bucket, info.key)
        except ObjectNotFound:
            continue
        found[(h.version, h.key_id)] += 1
    return found


def retire_old_generations(store: EncryptedObjectStore, bucket: str) -> list[int]:
    """Remove ``bucket``'s generations older than the newest, after a scan finds no object under them."""
    newest = store.data_keys.current(bucket)[0]
    left = {f: n for f, n in scan_formats(store, bucket).items() if not (f[0] == VERSION and f[1] == newest)}
    if left:
        what = ", ".join(f"{n} in DBE{v} generation {g}" for (v, g), n in sorted(left.items()))
        raise RekeyError(f"bucket {bucket} still holds objects not under generation {newest} ({what}); nothing was "
                         "retired: run `dialback keys rekey` again (a service may still have been writing under the "
                         "old generation; leases are left to their holders: wait one lease TTL, 10 min by default, "
                         "for them to be renewed or expire), then retire")
    return store.data_keys.retire(bucket, newest)
