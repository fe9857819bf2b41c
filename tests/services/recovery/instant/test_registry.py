"""Export registry on the in-memory store: lease while open, teardown, usage billing with deterministic ids."""

from __future__ import annotations

import os

import pytest

from agent.nbd.client import connect
from services.recovery.errors import NotFound
from services.recovery.instant.registry import ExportRegistry
from services.recovery.planner import At
from services.recovery.service import Recovery
from services.recovery.usage import ImageUsage
from shared import leases
from shared.objectstore.memory import MemoryObjectStore
from shared.usage import Meter, MemoryEmitter
from tests.services.recovery.instant.history import GROUP, VOLUMES, history, lease_keys, sha


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_export_lifecycle_lease_usage(tmp_path):
    store = MemoryObjectStore()
    sim = history(store, "acme")
    emitter = MemoryEmitter("/dialback/recovery")
    clock = Clock(1_000_000.0)
    reg = ExportRegistry(Recovery(store, work_dir=tmp_path), ImageUsage(emitter), usage_interval=3600,
                         work_dir=str(tmp_path / "work"), clock=clock)
    try:
        exp = reg.create("acme", GROUP, "disk0", None, "overlay")
        assert [i.holder for i in leases.live_leases(store, sim.bucket, GROUP)] == [f"nbd-export:{exp.id}"]
        with connect("127.0.0.1", exp.port, exp.export_name) as c:
            c.pwrite(b"Q" * 4096, 8192)
            got = c.pread(VOLUMES["disk0"], 0)
        want = bytearray(sim.reference(exp.sequence)["disk0"])
        want[8192:12288] = b"Q" * 4096
        assert sha(got) == sha(bytes(want))
        assert os.path.exists(exp.backend.path)
        assert [e.id for e in reg.list("acme", GROUP)] == [exp.id] and reg.list("other") == []
        with pytest.raises(NotFound):
            reg.get("other", GROUP, exp.id)
        clock.t += 5400  # an hour and a half open: the ticker bills the first whole interval
        reg.tick()
        clock.t += 100
        reg.tick()  # not due yet
        done = reg.close("acme", exp.id)
        assert not os.path.exists(exp.backend.path)
        assert lease_keys(store, sim.bucket) == []
        assert done["seconds"] == 5500
        evs = [e for e in emitter.events if e.meter == Meter.INSTANT_ACCESS_SECONDS]
        assert [e.quantity for e in evs] == [5400, 100]
        assert evs[0].id == f"instant:acme:{exp.id}:1000000-1005400" and evs[0].subject.endswith(exp.id)
        with pytest.raises(NotFound):
            reg.close("acme", exp.id)
    finally:
        reg.close_all()


def test_failure_after_lease_leaves_nothing(tmp_path):
    store = MemoryObjectStore()
    sim = history(store, "acme")
    seg = max(i.key for i in store.list(sim.bucket, f"groups/{GROUP}/journal/"))
    reg = ExportRegistry(Recovery(store, work_dir=tmp_path), work_dir=str(tmp_path / "work"))
    latest = Recovery(store).points("acme", GROUP)["latest"]["sequence"]
    store.put(sim.bucket, seg, b"\x00" * 10)  # corrupt: mapping fails after the lease was taken
    with pytest.raises(Exception):
        reg.create("acme", GROUP, "disk0", At.of(sequence=latest), "overlay")
    assert reg.list("acme") == [] and lease_keys(store, sim.bucket) == []
    assert list((tmp_path / "work").glob("dialback-overlay-*")) == []
    reg.close_all()


def test_export_limit_refuses_before_leasing(tmp_path):
    from services.recovery.instant.registry import TooManyExports

    store = MemoryObjectStore()
    sim = history(store, "acme")
    reg = ExportRegistry(Recovery(store, work_dir=tmp_path), max_exports=1)
    try:
        first = reg.create("acme", GROUP, "disk0", None, "read-only")
        with pytest.raises(TooManyExports) as err:
            reg.create("acme", GROUP, "disk1", None, "read-only")
        assert err.value.status == 503 and "stop one" in str(err.value)
        assert len(lease_keys(store, sim.bucket)) == 1 and [e.id for e in reg.list("acme")] == [first.id]
    finally:
        reg.close_all()
    assert lease_keys(store, sim.bucket) == []


def test_lease_renewed_while_open_so_gc_keeps_what_the_export_reads(tmp_path):
    """An export open for longer than its lease's TTL still holds a live lease when GC runs."""
    import time

    from services.retention.policy import HOUR_NS

    from tests.services.recovery.instant.history import POLICY, retain

    store = MemoryObjectStore()
    sim = history(store, "acme")
    reg = ExportRegistry(Recovery(store, work_dir=tmp_path), lease_ttl_s=0.6)  # renewed every 0.2 s
    try:
        exp = reg.create("acme", GROUP, "disk0", At.of(timestamp_ns=POLICY.floor_ns(sim.now) + HOUR_NS // 2),
                         "read-only")
        first_expiry = exp.lease.expires_ns
        time.sleep(1.5)  # 2.5 TTLs
        assert exp.lease.expires_ns > first_expiry
        assert [i.holder for i in leases.live_leases(store, sim.bucket, GROUP)] == [f"nbd-export:{exp.id}"]
        sim.advance(sim.now + 3 * HOUR_NS, mean_gap_ns=5 * 60 * 10**9)
        res = retain(store, sim)  # the export's journal is outside the window now
        assert any("journal after" in k for k in res.gc.kept_for_leases), res.gc
        with connect("127.0.0.1", exp.port, exp.export_name) as c:
            assert sha(c.pread(VOLUMES["disk0"], 0)) == sha(sim.reference(exp.sequence)["disk0"])
    finally:
        reg.close_all()
    assert lease_keys(store, sim.bucket) == []
    assert retain(store, sim).gc.segments_deleted > 0


def test_overlay_concurrent_sector_writes_into_one_block_all_land(tmp_path):
    """Writes from several connections into the same 4 KiB block (the server offers multi-conn) are all kept."""
    import threading

    store = MemoryObjectStore()
    sim = history(store, "acme")
    reg = ExportRegistry(Recovery(store, work_dir=tmp_path), work_dir=str(tmp_path / "work"))
    try:
        exp = reg.create("acme", GROUP, "disk0", None, "overlay")
        want = bytearray(sim.reference(exp.sequence)["disk0"])

        def writer(k: int) -> None:
            with connect("127.0.0.1", exp.port, exp.export_name) as c:
                for blk in range(32):
                    c.pwrite(bytes([k + 1]) * 512, blk * 4096 + k * 512)

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for blk in range(32):
            for k in range(8):
                want[blk * 4096 + k * 512: blk * 4096 + (k + 1) * 512] = bytes([k + 1]) * 512
        with connect("127.0.0.1", exp.port, exp.export_name) as c:
            assert sha(c.pread(VOLUMES["disk0"], 0)) == sha(bytes(want))
    finally:
        reg.close_all()
