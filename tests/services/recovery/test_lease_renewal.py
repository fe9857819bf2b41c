"""Leases outlive their TTL while a reader reads, and an export whose renewals fail stops serving.

Issue 13, defect 6: a recovery held a 3600 s lease and never renewed it; an export whose renewal
failed only logged and went on serving what GC may delete.
"""

from __future__ import annotations

import threading
import time

import pytest

from agent.nbd.client import NbdClientError, connect
from services.recovery.instant.registry import ExportRegistry
from services.recovery.planner import At
from services.recovery.service import Recovery
from services.retention.job import run_tenant
from services.retention.policy import HOUR_NS
from shared import leases
from shared.objectstore import TransientStoreError
from shared.objectstore.memory import MemoryObjectStore
from tests.services.recovery.instant.history import GROUP, POLICY, VOLUMES, history, sha
from tests.services.retention.test_gc_race import POLICY as RACE_POLICY, PausingStore, setup_group

TTL = 1.2  # seconds: renewed every 0.4 s


def test_recovery_reading_longer_than_its_ttl_keeps_its_lease(tmp_path):
    store = PausingStore()
    sim = setup_group(store)
    rec = Recovery(store, work_dir=tmp_path, lease_ttl_s=TTL)
    target = RACE_POLICY.floor_ns(sim.now) + HOUR_NS // 2  # needs journal GC would delete without the lease
    plan = rec.plan("acme", "db", None, At.of(timestamp_ns=target))
    sim.advance(sim.now + 3 * HOUR_NS, mean_gap_ns=5 * 60 * 10**9)
    out: dict = {}

    def recover() -> None:
        store.reader = threading.get_ident()
        try:
            paths, _ = rec.to_temp(plan)
            out["images"] = {v: p.read_bytes() for v, p in paths.items()}
        except BaseException as err:
            out["error"] = err

    t = threading.Thread(target=recover)
    t.start()
    assert store.reading.wait(30), "the recovery never read the journal"
    time.sleep(2.5 * TTL)  # the recovery is still reading, two TTLs after its lease was taken
    live = leases.live_leases(store, sim.bucket, "db")
    assert [lease.holder for lease in live] == ["recovery"], "the reader's lease expired while it read"
    res = run_tenant(store, sim.bucket, now_ns=sim.now, chunk_size=64 << 10)  # GC, wall-clock lease expiry
    store.resume.set()
    t.join(60)
    assert "error" not in out, out.get("error")
    assert out["images"] == sim.reference(plan.point.sequence)
    assert any("journal after" in k for k in res.gc.kept_for_leases), res.gc
    assert leases.live_leases(store, sim.bucket, "db") == []  # released, the keeper thread stopped
    assert not [th for th in threading.enumerate() if th.name.startswith("lease-")]


class FailLeasePuts(MemoryObjectStore):
    """Lease writes fail (a store outage for one key space) once ``failing`` is set."""

    failing = False

    def put(self, bucket: str, key: str, data: bytes) -> None:
        if self.failing and "/leases/" in key:
            raise TransientStoreError(f"put {bucket}/{key}: injected outage")
        super().put(bucket, key, data)


def test_export_whose_renewals_fail_stops_serving_after_half_its_ttl(tmp_path):
    store = FailLeasePuts()
    sim = history(store, "acme")
    reg = ExportRegistry(Recovery(store, work_dir=tmp_path), lease_ttl_s=TTL)
    try:
        exp = reg.create("acme", GROUP, "disk0", At.of(timestamp_ns=POLICY.floor_ns(sim.now) + HOUR_NS // 2),
                         "read-only")
        want = sim.reference(exp.sequence)["disk0"]
        with connect("127.0.0.1", exp.port, exp.export_name) as c:
            assert sha(c.pread(VOLUMES["disk0"], 0)) == sha(want)
            time.sleep(TTL)  # renewals keep going: still serving after a whole TTL
            assert c.pread(4096, 0) == want[:4096]
            renewed = exp.lease.expires_ns
            while exp.lease.expires_ns == renewed:  # start the outage just after a renewal
                time.sleep(0.005)
            store.failing = True
            failed_at = time.monotonic()
            time.sleep(0.2 * TTL)
            assert c.pread(4096, 0) == want[:4096]  # a missed renewal or two: still inside TTL/2
            # No renewal since just before the outage: refused TTL/2 after it.
            deadline = failed_at + TTL / 2 + 0.3
            refused = None
            while time.monotonic() < deadline + 1.0:
                try:
                    c.pread(4096, 0)
                except NbdClientError as err:
                    refused = (time.monotonic(), err)
                    break
                time.sleep(0.02)
            assert refused is not None, "the export kept serving with a lease that could not be renewed"
            assert failed_at + TTL / 2 - 0.05 <= refused[0] <= deadline, refused[0] - failed_at
        d = exp.to_dict()
        assert d["state"] == "failed" and "half its TTL" in d["error"] and "injected outage" in d["error"], d
        assert "start the read again" in d["error"]
        store.failing = False
        time.sleep(TTL / 2)
        assert reg.get("acme", GROUP, exp.id).to_dict()["state"] == "failed"  # sticky: create a new export
        with connect("127.0.0.1", exp.port, exp.export_name) as c, pytest.raises(NbdClientError):
            c.pread(4096, 0)
    finally:
        reg.close_all()
    assert leases.live_leases(store, sim.bucket, GROUP) == []


def test_keeper_lapses_only_after_half_the_ttl_without_a_renewal():
    store = FailLeasePuts()
    store.ensure_bucket("b")
    t = [0.0]
    lease = leases.acquire(store, "b", "g", 1, 1, ttl_s=30, holder="test")
    keeper = leases.LeaseKeeper(lease, monotonic=lambda: t[0])
    first = lease.expires_ns
    store.failing = True
    t[0] = 10
    assert not keeper.renew_now() and lease.expires_ns == first and not keeper.lapsed
    store.failing = False
    t[0] = 14
    assert keeper.renew_now() and lease.expires_ns > first
    store.failing = True
    t[0] = 14 + 14.9
    keeper.renew_now()
    keeper.check()  # 14.9 s without a renewal: not lapsed yet
    t[0] = 14 + 15
    with pytest.raises(leases.LeaseLapsed, match="half its TTL"):
        keeper.check()
    store.failing = False
    assert not keeper.renew_now() and keeper.lapsed  # sticky
