"""GC racing a recovery and a lease-holding reader: neither fails, and without the lease it would."""

from __future__ import annotations

import threading

import pytest

from services.recovery.planner import At
from services.recovery.service import Recovery
from services.recovery.synth import synthesize
from services.retention.job import run_tenant
from services.retention.policy import DAY_NS, HOUR_NS, Policy, write_policy
from shared import bases as B
from shared import keys, leases
from shared.errors import DialbackError
from shared.objectstore.memory import MemoryObjectStore
from tests.services.retention.sim import SimGroup

TENANT, GROUP = "acme", "db"
VOLUMES = {"disk0": 1 << 20}
T0 = 20_100 * DAY_NS + 3 * HOUR_NS
POLICY = Policy(anypoint_hours=2, hourly_days=0.5, daily_weeks=0)


class PausingStore(MemoryObjectStore):
    """Pauses the first journal-segment read made off the main thread (the recovery or its pool) once armed."""

    def __init__(self) -> None:
        super().__init__()
        self.reader: int | None = None  # set by the recovery thread: arms the pause
        self.main = threading.get_ident()
        self.reading = threading.Event()
        self.resume = threading.Event()

    def get(self, bucket: str, key: str) -> bytes:
        if self.reader is not None and threading.get_ident() != self.main and "/journal/" in key \
                and not self.reading.is_set():
            self.reading.set()
            assert self.resume.wait(30), "GC did not finish"
        return super().get(bucket, key)


def setup_group(store) -> SimGroup:
    sim = SimGroup(store, TENANT, GROUP, VOLUMES, T0, seed=11)
    write_policy(store, sim.bucket, GROUP, POLICY)
    sim.initial_sync()
    sim.advance(T0 + 10 * HOUR_NS, mean_gap_ns=5 * 60 * 10**9)
    run_tenant(store, sim.bucket, now_ns=sim.now, chunk_size=64 << 10)
    return sim


def test_gc_during_recovery_keeps_what_the_recovery_reads(tmp_path):
    store = PausingStore()
    sim = setup_group(store)
    rec = Recovery(store, work_dir=tmp_path)
    # A point just inside the window: two hours later it is outside, and its journal is garbage.
    target = POLICY.floor_ns(sim.now) + HOUR_NS // 2
    plan = rec.plan(TENANT, GROUP, None, At.of(timestamp_ns=target))
    assert plan.base is not None and plan.base.sequence < plan.point.sequence
    sim.advance(sim.now + 3 * HOUR_NS, mean_gap_ns=5 * 60 * 10**9)
    out: dict = {}

    def recover() -> None:
        store.reader = threading.get_ident()
        try:
            paths, _ = rec.to_temp(plan)
            out["images"] = {v: p.read_bytes() for v, p in paths.items()}
        except BaseException as err:  # reported by the main thread
            out["error"] = err

    t = threading.Thread(target=recover)
    t.start()
    assert store.reading.wait(30), "the recovery never read the journal"
    res = run_tenant(store, sim.bucket, now_ns=sim.now, chunk_size=64 << 10)  # GC while the recovery reads
    store.resume.set()
    t.join(60)
    assert "error" not in out, out.get("error")
    assert out["images"] == sim.reference(plan.point.sequence)
    assert any("journal after" in k for k in res.gc.kept_for_leases), res.gc
    # The lease is gone with the recovery; the next GC removes what it had kept.
    assert leases.live_leases(store, sim.bucket, GROUP) == []
    later = run_tenant(store, sim.bucket, now_ns=sim.now, chunk_size=64 << 10)
    assert later.gc.segments_deleted > 0 and later.gc.timeline_deleted > 0
    # The same stale plan without a lease now fails: the lease is what protected the reader.
    with pytest.raises(DialbackError):
        synthesize(store, plan.journal, plan.point, {"disk0": tmp_path / "stale.img"}, base=plan.base)


def test_recovery_planned_before_gc_replans_under_its_lease(tmp_path):
    store = MemoryObjectStore()
    sim = setup_group(store)
    rec = Recovery(store, work_dir=tmp_path)
    h = POLICY.floor_ns(sim.now) + HOUR_NS  # an hour boundary inside the window, retained later as an hourly point
    plan = rec.plan(TENANT, GROUP, None, At.of(timestamp_ns=h))
    sim.advance(sim.now + 3 * HOUR_NS, mean_gap_ns=5 * 60 * 10**9)
    run_tenant(store, sim.bucket, now_ns=sim.now, chunk_size=64 << 10)  # GC between planning and reading
    paths, _ = rec.to_temp(plan)
    assert {v: p.read_bytes() for v, p in paths.items()} == sim.reference(sim.seq_at(h))


def test_lease_holding_reader_keeps_its_base_and_chunks():
    store = MemoryObjectStore()
    sim = setup_group(store)
    bucket = sim.bucket
    oldest = B.read_bases(store, bucket, GROUP)[0]
    expected = sim.reference(oldest.sequence)["disk0"]
    lease = leases.acquire(store, bucket, GROUP, oldest.sequence, oldest.sequence, ttl_s=60, holder="nbd-export")
    sim.advance(sim.now + DAY_NS, mean_gap_ns=30 * 60 * 10**9)  # the base's point leaves the policy
    res = run_tenant(store, bucket, now_ns=sim.now, chunk_size=64 << 10)
    assert any(f"base {oldest.sequence}" in k for k in res.gc.kept_for_leases)
    still = B.read_base(store, bucket, GROUP, oldest.sequence)
    got = b"".join(B.read_volume_chunk(store, bucket, still, "disk0", i) for i in range(len(still.volumes["disk0"].chunks)))
    assert got == expected
    lease.release()
    run_tenant(store, bucket, now_ns=sim.now, chunk_size=64 << 10, chunk_grace_s=0)  # no rollup runs elsewhere
    assert oldest.sequence not in B.list_base_sequences(store, bucket, GROUP)
    live = set().union(*(b.chunk_ids() for b in B.read_bases(store, bucket, GROUP)))
    assert {i.key.rsplit("/", 1)[-1] for i in store.list(bucket, keys.CHUNKS_PREFIX)} == live


def test_expired_lease_protects_nothing_and_is_removed():
    store = MemoryObjectStore()
    sim = setup_group(store)
    oldest = B.read_bases(store, sim.bucket, GROUP)[0]
    clock = [1000.0]
    leases.acquire(store, sim.bucket, GROUP, oldest.sequence, oldest.sequence, ttl_s=5, clock=lambda: clock[0])
    sim.advance(sim.now + DAY_NS, mean_gap_ns=30 * 60 * 10**9)
    res = run_tenant(store, sim.bucket, now_ns=sim.now, chunk_size=64 << 10, lease_now_ns=int(2000 * 1e9))
    assert res.gc.leases_expired == 1 and not res.gc.kept_for_leases
    assert oldest.sequence not in B.list_base_sequences(store, sim.bucket, GROUP)


class MidGcStore(PausingStore):
    """Calls ``on_hide`` once, just before GC deletes its first timeline entry (phase 1)."""

    on_hide = None

    def delete(self, bucket: str, key: str) -> None:
        if "/timeline/" in key and self.on_hide is not None:
            hook, self.on_hide = self.on_hide, None
            hook()
        super().delete(bucket, key)


def test_reader_arriving_between_gc_phases_is_protected(tmp_path):
    from services.retention.gc import gc_tenant

    store = MidGcStore()
    sim = setup_group(store)
    rec = Recovery(store, work_dir=tmp_path)
    old_floor = rec.points(TENANT, GROUP)["earliest"]["sequence"]
    sim.advance(sim.now + 3 * HOUR_NS, mean_gap_ns=5 * 60 * 10**9)
    run_tenant(store, sim.bucket, now_ns=sim.now, chunk_size=64 << 10, gc=False)  # new floor base, nothing deleted
    new_floor = sim.seq_at(POLICY.floor_ns(sim.now))
    seqs = [s for s in B.list_base_sequences(store, sim.bucket, GROUP) if old_floor <= s <= new_floor]
    # Inside the window now, gone after this GC, and not a base: it needs the journal GC deletes.
    target = next(a + 1 for a, b in zip(seqs, seqs[1:]) if b - a >= 2)
    out: dict = {}

    def recover() -> None:
        store.reader = threading.get_ident()
        try:
            paths, _ = rec.to_temp(rec.plan(TENANT, GROUP, None, At.of(sequence=target)))
            out["images"] = {v: p.read_bytes() for v, p in paths.items()}
        except BaseException as err:
            out["error"] = err

    t = threading.Thread(target=recover)

    def reader_arrives() -> None:  # after GC listed leases for phase 1, before it hides anything
        t.start()
        store.reading.wait(30)
        assert store.reading.is_set(), f"the recovery never read the journal: {out.get('error')}"

    store.on_hide = reader_arrives
    stats = gc_tenant(store, sim.bucket, now_ns=sim.now)
    store.resume.set()
    t.join(60)
    assert "error" not in out, out.get("error")
    assert out["images"] == sim.reference(target), "recovered bytes differ from the reference"
    assert stats.timeline_deleted > 0 and any("journal after" in k for k in stats.kept_for_leases)
    with pytest.raises(DialbackError, match="no longer retained"):
        rec.plan(TENANT, GROUP, None, At.of(sequence=target))
