"""Garbage collection: remove what no retained point and no reader needs.

Per group, at ``now_ns`` under the group's current policy:

* a base is kept while one of its points is retained (or lies inside the
  any-point window, after a policy change) or a live lease names it; kept
  bases lose the points the policy no longer retains;
* the journal is needed from the *floor base* (the base standing for the
  floor point) on: timeline entries and segments whose records all lie at
  or before min(floor base, every live lease's ``from_seq``) are removed.
  Without a floor base nothing of the journal is removed. The newest
  timeline entry is always kept (it pins the latest point).

Per tenant: chunks no kept base references are swept (mark and sweep).
Marking reads the bases of EVERY group directory in the bucket
(``list_prefixes("groups/")``), manifest or not: a group whose manifest was
lost still owns its bases, and their chunks stay. Groups without a manifest
are not pruned (phase 1 needs the group's policy and volumes to be known);
the retention job rebuilds their manifest first (:mod:`manifests`).

Grace: a chunk modified less than ``chunk_grace_s`` ago (the store's
last-modified time against the wall clock) is never swept, referenced or
not. A rollup stores a base's chunks before the base document that
references them; the in-process tenant lock keeps this process's rollup and
GC apart, but a rollup in another process (``dialback retention run``
beside the service, a second retention instance) holds unreferenced fresh
chunks for as long as it runs. The grace must exceed the longest rollup
(:meth:`RetentionSettings.chunk_grace_s`).

Race safety: phase 1 hides (deletes base documents and timeline entries)
using the leases listed at the start; phase 2 lists leases again and only
then deletes data (segments, chunks), sparing what any lease seen in either
listing needs. A reader that acquires its lease and then plans (see
:mod:`shared.leases`) therefore never loses what it planned on. The chunk
listing is taken before the bases are marked, so a chunk stored after GC
started is never swept; rollup and GC of one tenant never overlap (one
lock per bucket in :mod:`job`), which covers chunks a rollup re-references.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from shared import bases as B
from shared import keys
from shared.journal import read_timeline
from shared.leases import LeaseInfo, expired_lease_keys, live_leases
from shared.objectstore import ObjectStore
from services.retention.policy import read_policy

log = logging.getLogger(__name__)


@dataclass
class GcStats:
    bases_deleted: int = 0
    bases_pruned: int = 0
    segments_deleted: int = 0
    timeline_deleted: int = 0
    chunks_deleted: int = 0
    chunks_young: int = 0  # unreferenced but inside the grace period: kept
    leases_expired: int = 0
    bytes_freed: int = 0
    kept_for_leases: list[str] = field(default_factory=list)


@dataclass
class _GroupPlan:
    group: str
    hidden_bases: dict[int, B.Base] = field(default_factory=dict)  # deleted docs, kept in memory for phase 2
    journal_floor: int = 0  # segments with last_seq <= this may go (before phase-2 leases)
    leases: list[LeaseInfo] = field(default_factory=list)


# A day: far longer than a rollup of one job step takes; see RetentionSettings.chunk_grace_s.
DEFAULT_CHUNK_GRACE_S = 86400.0


def all_groups(store: ObjectStore, bucket: str) -> list[str]:
    """Every group directory of a tenant (``groups/<g>/``), with or without a manifest."""
    return sorted(p.split("/")[1] for p in store.list_prefixes(bucket, "groups/"))


def list_groups(store: ObjectStore, bucket: str) -> list[str]:
    """Groups of a tenant with a manifest (those rollup and phase 1 of GC work on)."""
    return [g for g in all_groups(store, bucket) if store.exists(bucket, keys.manifest_key(g))]


def gc_tenant(store: ObjectStore, bucket: str, now_ns: int, lease_now_ns: int | None = None,
              groups: list[str] | None = None, chunk_grace_s: float = DEFAULT_CHUNK_GRACE_S,
              wall_now_ns: int | None = None) -> GcStats:
    """One GC pass over a tenant's bucket. ``now_ns`` drives the policy, ``lease_now_ns`` lease expiry,
    ``wall_now_ns`` the chunk grace against the store's modification times (both wall clock unless given).
    ``groups`` are pruned (default: those with a manifest); chunks are marked from every group's bases."""
    if chunk_grace_s < 0:
        raise ValueError(f"chunk_grace_s must be >= 0, got {chunk_grace_s}")
    stats = GcStats()
    lease_now = time.time_ns() if lease_now_ns is None else lease_now_ns
    young_after = (time.time_ns() if wall_now_ns is None else wall_now_ns) - int(chunk_grace_s * 1e9)
    groups = list_groups(store, bucket) if groups is None else groups
    chunk_snapshot = {i.key: i for i in store.list(bucket, keys.CHUNKS_PREFIX)}
    plans = [_phase1(store, bucket, g, now_ns, lease_now, stats) for g in groups]
    # Groups without a manifest (lost, or not written yet): nothing pruned, but what they reference stays.
    plans += [_GroupPlan(g) for g in all_groups(store, bucket) if g not in set(groups)]
    marked: set[str] = set()
    for p in plans:
        leases = p.leases + live_leases(store, bucket, p.group, lease_now)
        for b in B.read_bases(store, bucket, p.group):
            marked |= b.chunk_ids()
        for lease in leases:
            if lease.base_seq in p.hidden_bases:
                marked |= p.hidden_bases[lease.base_seq].chunk_ids()
                stats.kept_for_leases.append(f"{p.group}: chunks of base {lease.base_seq}")
        floor = min([p.journal_floor] + [lease.from_seq for lease in leases])
        if floor < p.journal_floor and not any(k.startswith(f"{p.group}: journal after") for k in stats.kept_for_leases):
            stats.kept_for_leases.append(f"{p.group}: journal after {floor}")
        _delete_segments(store, bucket, p.group, floor, stats)
        for key in expired_lease_keys(store, bucket, p.group, lease_now):
            store.delete(bucket, key)
            stats.leases_expired += 1
    marked_keys = {keys.chunk_key(c) for c in marked}
    for key, info in chunk_snapshot.items():
        if key in marked_keys:
            continue
        if info.modified_ns > young_after:
            stats.chunks_young += 1  # maybe a running rollup's, not referenced yet
            continue
        store.delete(bucket, key)
        stats.chunks_deleted += 1
        stats.bytes_freed += info.size
    return stats


def _phase1(store: ObjectStore, bucket: str, group: str, now_ns: int, lease_now: int, stats: GcStats) -> _GroupPlan:
    policy = read_policy(store, bucket, group)
    floor_ns = policy.floor_ns(now_ns)
    retained = set(policy.retained_points(now_ns))
    plan = _GroupPlan(group, leases=live_leases(store, bucket, group, lease_now))
    leased = {lease.base_seq for lease in plan.leases}
    floor_base = None
    for b in B.read_bases(store, bucket, group):
        keep_pts = tuple(p for p in b.points_ns if p in retained or p >= floor_ns)
        if floor_ns in b.points_ns:
            floor_base = b.sequence
        if keep_pts:
            if keep_pts != b.points_ns:
                B.put_base(store, bucket, B.Base(group, b.sequence, b.timestamp_ns, b.chunk_size, b.volumes, keep_pts))
                stats.bases_pruned += 1
            continue
        if b.sequence in leased:
            stats.kept_for_leases.append(f"{group}: base {b.sequence}")
            continue
        store.delete(bucket, b.key)
        plan.hidden_bases[b.sequence] = b
        stats.bases_deleted += 1
    if floor_base is None:
        return plan  # the floor's base is not built yet: keep the whole journal
    floor = min([floor_base] + [lease.from_seq for lease in plan.leases])
    if floor < floor_base:
        stats.kept_for_leases.append(f"{group}: journal after {floor}")
    entries = sorted(read_timeline(store, bucket, group), key=lambda e: e.last_seq)
    newest = entries[-1].last_seq if entries else 0
    for e in entries:
        if e.last_seq <= floor and e.last_seq < newest:
            store.delete(bucket, keys.timeline_key(group, e.first_seq, e.last_seq))
            stats.timeline_deleted += 1
    plan.journal_floor = min(floor, newest - 1)
    return plan


def _delete_segments(store: ObjectStore, bucket: str, group: str, floor: int, stats: GcStats) -> None:
    """Segments whose records all lie at or before ``floor`` and whose timeline entry is gone."""
    if floor <= 0:
        return
    live = {keys.parse_range(i.key) for i in store.list(bucket, keys.timeline_prefix(group)) if i.key.endswith(".json")}
    for info in store.list(bucket, keys.journal_prefix(group)):
        try:
            first, last = keys.parse_range(info.key)
        except ValueError:
            continue
        if first > floor:
            break  # keys sort by first sequence: nothing after this lies before the floor
        if last > floor:
            continue
        if (first, last) in live:
            continue
        store.delete(bucket, info.key)
        stats.segments_deleted += 1
        stats.bytes_freed += info.size
