"""The randomized long-run proof: simulated days of writes, policy applied, rollup + GC run on an
injected clock; every retained point restores byte-exact against a reference model, every gone point
is refused with a clear error, and what GC removed is really gone."""

from __future__ import annotations

import random

import pytest

from services.recovery.errors import OutOfRange
from services.recovery.planner import At
from services.recovery.service import Recovery
from services.retention.job import run_tenant
from services.retention.policy import DAY_NS, HOUR_NS, Policy, write_policy
from shared import bases as B
from shared import keys
from shared.objectstore.memory import MemoryObjectStore
from tests.services.retention.sim import SimGroup

TENANT, GROUP = "acme", "web"
VOLUMES = {"disk0": 2 << 20, "disk1": 1 << 20}
T0 = 20_000 * DAY_NS + 5 * HOUR_NS + 17 * 10**9  # a day boundary plus an odd offset
CHUNK = 64 << 10


def restore(rec: Recovery, at: At) -> tuple[int, dict[str, bytes]]:
    plan = rec.plan(TENANT, GROUP, None, at)
    paths, _ = rec.to_temp(plan)
    try:
        return plan.point.sequence, {v: p.read_bytes() for v, p in paths.items()}
    finally:
        for p in paths.values():
            p.unlink()


def check_retained(sim: SimGroup, rec: Recovery, policy: Policy, now: int, rng: random.Random) -> int:
    """Every retained policy point and a sample of any-point times restore byte-exact; returns how many."""
    checked = 0
    floor = policy.floor_ns(now)
    for h in policy.retained_points(now):
        if sim.seq_at(h) < sim.records[0].sequence or h < sim.records[0].timestamp_ns:
            continue
        seq, got = restore(rec, At.of(timestamp_ns=h))
        assert seq == sim.seq_at(h), f"point {h}"
        assert got == sim.reference(seq), f"retained point {h} (sequence {seq}) differs from the reference"
        checked += 1
    for _ in range(6):
        t = rng.randrange(floor, sim.records[-1].timestamp_ns + 1)  # after the latest write is refused
        seq, got = restore(rec, At.of(timestamp_ns=t))
        assert seq == sim.seq_at(t) and got == sim.reference(seq), f"any-point time {t}"
        s = rng.randrange(sim.seq_at(floor), sim.seq + 1)
        _, got = restore(rec, At.of(sequence=s))
        assert got == sim.reference(s), f"any-point sequence {s}"
        checked += 2
    return checked


def check_gone(sim: SimGroup, rec: Recovery, policy: Policy, now: int, rng: random.Random) -> int:
    retained = set(policy.retained_points(now))
    floor_seq = sim.seq_at(policy.floor_ns(now))
    first_ts = sim.records[0].timestamp_ns
    candidates = [h for h in range(first_ts // HOUR_NS * HOUR_NS + HOUR_NS, policy.floor_ns(now), HOUR_NS)
                  if h not in retained]
    candidates += [rng.randrange(first_ts, policy.floor_ns(now)) for _ in range(10)]
    refused = 0
    for t in candidates:
        if t in retained or sim.seq_at(t) >= floor_seq:
            continue  # same state as a retained point or the window's start: legitimately served
        with pytest.raises(OutOfRange) as err:
            rec.plan(TENANT, GROUP, None, At.of(timestamp_ns=t))
        assert "no longer retained" in str(err.value) and "Nearest retained points" in str(err.value)
        refused += 1
    retained_seqs = {sim.seq_at(h) for h in retained}
    for s in rng.sample(range(1, floor_seq), min(20, floor_seq - 1)):
        if s in retained_seqs:
            continue
        with pytest.raises(OutOfRange, match="no longer retained"):
            rec.plan(TENANT, GROUP, None, At.of(sequence=s))
        refused += 1
    return refused


def check_store(store: MemoryObjectStore, bucket: str, sim: SimGroup, policy: Policy, now: int) -> None:
    """No journal before the floor base; every referenced chunk present; no unreferenced chunk left."""
    bases = B.read_bases(store, bucket, GROUP)
    floor_seq = sim.seq_at(policy.floor_ns(now))
    assert floor_seq in {b.sequence for b in bases}
    segs = [keys.parse_range(i.key) for i in store.list(bucket, keys.journal_prefix(GROUP))]
    assert all(last > floor_seq for _, last in segs[:-1]), "a segment wholly before the floor base survived GC"
    referenced = set().union(*(b.chunk_ids() for b in bases))
    stored = {i.key.rsplit("/", 1)[-1] for i in store.list(bucket, keys.CHUNKS_PREFIX)}
    assert referenced == stored
    assert {h for b in bases for h in b.points_ns} <= set(policy.retained_points(now)) | {
        h for b in bases for h in b.points_ns if h >= policy.floor_ns(now)}


def test_long_run_retention_proof(tmp_path):
    rng = random.Random(42)
    store = MemoryObjectStore()
    sim = SimGroup(store, TENANT, GROUP, VOLUMES, T0, seed=3)
    bucket = sim.bucket
    policy = Policy(anypoint_hours=6, hourly_days=1.5, daily_weeks=1)
    write_policy(store, bucket, GROUP, policy)
    rec = Recovery(store, work_dir=tmp_path)
    sim.initial_sync()
    checked = refused = 0
    # Ten simulated days; the retention job runs every simulated 3 hours, checks every two days.
    for step in range(1, 10 * 8 + 1):
        sim.advance(T0 + step * 3 * HOUR_NS, mean_gap_ns=6 * 60 * 10**9)
        # No rollup runs in another process: no chunk grace, so check_store sees every garbage chunk gone.
        run_tenant(store, bucket, now_ns=sim.now, chunk_size=CHUNK, chunk_grace_s=0)
        if step == 40:
            # A policy change applies at the next run, without any restart.
            policy = Policy(anypoint_hours=4, hourly_days=1, daily_weeks=1)
            write_policy(store, bucket, GROUP, policy)
        if step % 16 == 0:
            checked += check_retained(sim, rec, policy, sim.now, rng)
            refused += check_gone(sim, rec, policy, sim.now, rng)
            check_store(store, bucket, sim, policy, sim.now)
    points = rec.points(TENANT, GROUP)
    listed = {h for p in points["retained"] for h in p["points_ns"]}
    assert listed == {h for h in policy.retained_points(sim.now) if h < policy.floor_ns(sim.now)
                      and h >= sim.records[0].timestamp_ns}
    assert points["earliest"]["sequence"] == sim.seq_at(policy.floor_ns(sim.now))
    print("records", len(sim.records), "checked", checked, "refused", refused)
    assert len(sim.records) > 1500 and checked > 100 and refused > 50


def test_recovery_in_window_starts_from_nearest_base(tmp_path):
    store = MemoryObjectStore()
    sim = SimGroup(store, TENANT, GROUP, VOLUMES, T0, seed=5)
    write_policy(store, sim.bucket, GROUP, Policy(anypoint_hours=2, hourly_days=1, daily_weeks=0))
    sim.initial_sync()
    sim.advance(T0 + 30 * HOUR_NS, mean_gap_ns=10 * 60 * 10**9)
    run_tenant(store, sim.bucket, now_ns=sim.now, chunk_size=CHUNK)
    rec = Recovery(store, work_dir=tmp_path)
    plan = rec.plan(TENANT, GROUP, None, At.of(sequence=sim.seq))
    assert plan.base is not None and plan.base.sequence == sim.seq_at(Policy(2, 1, 0).floor_ns(sim.now))
    paths, stats = rec.to_temp(plan)
    assert {v: p.read_bytes() for v, p in paths.items()} == sim.reference(sim.seq)
    # Only the journal after the base was read: a few hours of records, not thirty.
    after = [r for r in sim.records if r.sequence > plan.base.sequence]
    assert stats.records_applied == len(after) - sum(1 for r in after if r.kind.name == "BOOKMARK")
    assert stats.base_chunks > 0
