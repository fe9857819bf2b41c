"""Rollup: roll the journal forward into base images at the policy's retained points.

For every retained point H (see :mod:`policy`) that the journal still
covers and no base stands for yet, the group's state at H (the last
sequence S with timestamp <= H) is written as a base: the newest base at or
before S plus the journal records after it, applied chunk by chunk. Only
chunks a record touched are re-hashed and stored; the others keep the
previous base's ids, and content addressing makes an unchanged chunk free.

A retained point inside an inconsistency window (shared/consistency.py: the
initial sync, or a resync after a spool overflow) matched no real disk: no
base stands for it, so it is never offered as a retained point. (GC keeps
the journal until the policy's floor point has a base, i.e. until the floor
lies outside the window.)

Idempotent: keys derive from S, chunk ids from content, so a rerun after a
crash rewrites the same objects. One rollup/GC at a time per tenant (the
retention job holds a lock per bucket): GC's chunk sweep relies on it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from shared import bases as B
from shared import consistency
from shared.frames import Kind, Record
from shared.journal import INITIAL_SYNC_BOOKMARK, TimelineEntry, chain_from, iter_segment_records, read_manifest, \
    read_timeline, seq_at_time
from shared.objectstore import ObjectStore
from services.retention.policy import Policy, read_policy

log = logging.getLogger(__name__)


@dataclass
class RollupStats:
    bases_built: int = 0
    bases_updated: int = 0
    records_applied: int = 0
    chunks_stored: int = 0
    skipped: list[str] = field(default_factory=list)


class _State:
    """The volumes' chunk ids plus an in-memory cache of the chunks being changed."""

    def __init__(self, store: ObjectStore, bucket: str, volumes: dict[str, int], chunk_size: int,
                 prev: B.Base | None, max_cache: int) -> None:
        self.store, self.bucket, self.c = store, bucket, chunk_size
        self.sizes = volumes
        self.ids: dict[str, list[str | None]] = {}
        for v, size in volumes.items():
            n = -(-size // chunk_size)
            old = list(prev.volumes[v].chunks) if prev and v in prev.volumes else []
            self.ids[v] = (old + [None] * n)[:n]
        self.cache: dict[tuple[str, int], bytearray] = {}
        self.dirty: set[tuple[str, int]] = set()
        self.max_chunks = max(4, max_cache // chunk_size)
        self.known: set[str] = set()
        self.stored = 0

    def _chunk(self, v: str, i: int) -> bytearray:
        k = (v, i)
        buf = self.cache.get(k)
        if buf is None:
            if len(self.cache) >= self.max_chunks:
                self.flush()
                self.cache.clear()
            length = min(self.c, self.sizes[v] - i * self.c)
            cid = self.ids[v][i]
            buf = bytearray(length) if cid is None else bytearray(B.read_chunk(self.store, self.bucket, cid, length=length))
            if len(buf) != length:
                raise B.BaseError(f"chunk {cid} of volume {v!r} holds {len(buf)} bytes, expected {length}")
            self.cache[k] = buf
        return buf

    def apply(self, rec: Record) -> None:
        if rec.kind not in (Kind.DATA, Kind.ZEROES, Kind.TRIM) or rec.volume not in self.sizes or rec.length == 0:
            return
        if rec.offset + rec.length > self.sizes[rec.volume]:
            raise B.BaseError(f"record {rec.sequence} writes {rec.offset}+{rec.length} past the end of "
                              f"{rec.volume!r} ({self.sizes[rec.volume]} bytes)")
        data = rec.data() if rec.kind == Kind.DATA else None
        start, end, c = rec.offset, rec.offset + rec.length, self.c
        for i in range(start // c, (end - 1) // c + 1):
            lo, hi = max(start, i * c), min(end, (i + 1) * c)
            buf = self._chunk(rec.volume, i)
            buf[lo - i * c: hi - i * c] = data[lo - start: hi - start] if data is not None else bytes(hi - lo)
            self.dirty.add((rec.volume, i))

    def flush(self) -> None:
        for v, i in sorted(self.dirty):
            before = len(self.known)
            self.ids[v][i] = B.put_chunk(self.store, self.bucket, bytes(self.cache[(v, i)]), self.known)
            self.stored += len(self.known) - before
        self.dirty.clear()

    def base(self, group: str, seq: int, ts: int, points: list[int]) -> B.Base:
        self.flush()
        return B.Base(group, seq, ts, self.c,
                      {v: B.VolumeChunks(self.sizes[v], tuple(ids)) for v, ids in self.ids.items()}, tuple(points))


def rollup_group(store: ObjectStore, bucket: str, group: str, now_ns: int, chunk_size: int = B.DEFAULT_CHUNK_SIZE,
                 policy: Policy | None = None, max_cache_bytes: int = 256 << 20) -> RollupStats:
    """Build the bases the policy needs at ``now_ns`` (an injected clock in tests)."""
    stats = RollupStats()
    policy = policy or read_policy(store, bucket, group)
    volumes = read_manifest(store, bucket, group)
    entries = chain_from(read_timeline(store, bucket, group))
    if volumes is None or not entries:
        return stats
    start = entries[0].first_seq - 1
    base_seqs = B.list_base_sequences(store, bucket, group)
    initial = next((b.sequence for e in entries for b in e.bookmarks if b.name == INITIAL_SYNC_BOOKMARK), None)
    if initial is None and not base_seqs:
        stats.skipped.append("initial sync not complete")
        return stats
    min_seq = initial if initial is not None else base_seqs[0]
    targets: dict[int, list[int]] = {}
    wins = consistency.windows(b for e in entries for b in e.bookmarks)
    for h in policy.retained_points(now_ns):
        s = seq_at_time(store, bucket, entries, h)
        if s is None or s < min_seq or s < start:
            continue  # before the journal we still hold (already a base or gone) or before the initial sync
        if consistency.window_at_time(wins, h) or consistency.window_at_sequence(wins, s):
            continue  # no real disk held this state: not a point to keep
        targets.setdefault(s, []).append(h)
    for s in [s for s in targets if s in base_seqs]:
        old = B.read_base(store, bucket, group, s)
        hs = targets.pop(s)
        if not set(hs) <= set(old.points_ns):
            B.put_base(store, bucket, B.Base(group, s, old.timestamp_ns, old.chunk_size, old.volumes,
                                             tuple(sorted(set(old.points_ns) | set(hs)))))
            stats.bases_updated += 1
    if not targets:
        return stats
    first = min(targets)
    usable = [b for b in base_seqs if start <= b <= first]
    if not usable and start > 0:
        stats.skipped.append(f"journal starts after sequence {start} and no base at or after it precedes {first}")
        log.error("group %s/%s: cannot build bases: %s", bucket, group, stats.skipped[-1])
        return stats
    prev = B.read_base(store, bucket, group, usable[-1]) if usable else None
    prev_seq = prev.sequence if prev else 0
    state = _State(store, bucket, volumes, prev.chunk_size if prev else chunk_size, prev, max_cache_bytes)
    last_target = max(targets)
    for e in _entries_between(entries, prev_seq, last_target):
        for rec in iter_segment_records(store.get(bucket, e.segment), e.segment):
            if rec.sequence <= prev_seq:
                continue
            if rec.sequence > last_target:
                break
            if rec.sequence != prev_seq + 1:
                raise B.BaseError(f"{e.segment}: expected sequence {prev_seq + 1}, found {rec.sequence}")
            state.apply(rec)
            stats.records_applied += 1
            prev_seq = rec.sequence
            if rec.sequence in targets:
                B.put_base(store, bucket, state.base(group, rec.sequence, rec.timestamp_ns, targets[rec.sequence]))
                stats.bases_built += 1
    stats.chunks_stored = state.stored
    if prev_seq < last_target:
        raise B.BaseError(f"group {group!r}: journal ends at sequence {prev_seq}, rollup needed {last_target}")
    return stats


def _entries_between(entries: list[TimelineEntry], after: int, through: int) -> list[TimelineEntry]:
    return [e for e in entries if e.last_seq > after and e.first_seq <= through]
