"""Rollup: bases match the reference, chunks deduplicate across bases and volumes, reruns are idempotent."""

from __future__ import annotations

from services.retention.policy import DAY_NS, HOUR_NS, Policy, write_policy
from services.retention.rollup import rollup_group
from shared import bases as B
from shared import keys
from shared.objectstore.memory import MemoryObjectStore
from tests.services.retention.sim import SimGroup

T0 = 20_200 * DAY_NS


def image(store, bucket, base, vol):
    return b"".join(B.read_volume_chunk(store, bucket, base, vol, i) for i in range(len(base.volumes[vol].chunks)))


def test_rollup_bases_match_reference_and_dedupe():
    store = MemoryObjectStore()
    sim = SimGroup(store, "acme", "g", {"a": 1 << 20, "b": 1 << 20}, T0, seed=9)
    write_policy(store, sim.bucket, "g", Policy(anypoint_hours=1, hourly_days=1, daily_weeks=0))
    sim.initial_sync()
    sim.advance(T0 + 12 * HOUR_NS, mean_gap_ns=20 * 60 * 10**9)
    stats = rollup_group(store, sim.bucket, "g", sim.now, chunk_size=32 << 10)
    bases = B.read_bases(store, sim.bucket, "g")
    assert stats.bases_built == len(bases) >= 10
    for b in bases:
        ref = sim.reference(b.sequence)
        assert all(image(store, sim.bucket, b, v) == ref[v] for v in ref)
        assert all(sim.seq_at(h) == b.sequence for h in b.points_ns)
    refs = sum(len([c for c in b.volumes[v].chunks if c]) for b in bases for v in b.volumes)
    stored = list(store.list(sim.bucket, keys.CHUNKS_PREFIX))
    assert len(stored) < refs / 5  # hourly bases share almost every chunk
    before = {i.key for i in store.list(sim.bucket, "")}
    again = rollup_group(store, sim.bucket, "g", sim.now, chunk_size=32 << 10)
    assert again.bases_built == 0 and {i.key for i in store.list(sim.bucket, "")} == before


def test_rollup_waits_for_initial_sync():
    store = MemoryObjectStore()
    sim = SimGroup(store, "acme", "g", {"a": 256 << 10}, T0)
    sim.advance(T0 + 30 * HOUR_NS, mean_gap_ns=3600 * 10**9)
    stats = rollup_group(store, sim.bucket, "g", sim.now + 2 * DAY_NS)
    assert stats.bases_built == 0 and stats.skipped == ["initial sync not complete"]


def test_rollup_keeps_no_point_inside_a_resync_window():
    from shared.consistency import resync_complete_name, resync_start_name
    from tests.services.retention.helpers import bookmark

    store = MemoryObjectStore()
    sim = SimGroup(store, "acme", "g", {"a": 1 << 20}, T0, seed=4)
    write_policy(store, sim.bucket, "g", Policy(anypoint_hours=1, hourly_days=1, daily_weeks=0))
    sim.initial_sync()
    sim.advance(T0 + 3 * HOUR_NS, mean_gap_ns=10 * 60 * 10**9)
    last_ts = sim.records[-1].timestamp_ns
    s = sim._next()
    sim._journal([bookmark("a", s, last_ts, resync_start_name(s))])  # the spool overflowed
    sim.advance(T0 + 6 * HOUR_NS, mean_gap_ns=10 * 60 * 10**9)  # resync chunks and writes, out of order
    e = sim._next()
    sim._journal([bookmark("a", e, sim.now, resync_complete_name(e))])
    end_ts = sim.now
    sim.advance(T0 + 12 * HOUR_NS, mean_gap_ns=10 * 60 * 10**9)
    rollup_group(store, sim.bucket, "g", sim.now, chunk_size=32 << 10)
    pts = [(h, b.sequence) for b in B.read_bases(store, sim.bucket, "g") for h in b.points_ns]
    assert [h for h, _ in pts if h < last_ts] and [h for h, _ in pts if h > end_ts]  # points on both sides kept
    inside = [(h, seq) for h, seq in pts if last_ts < h < end_ts or s < seq < e]
    assert inside == [], f"retained points inside the resync window {s}-{e}: {inside}"
