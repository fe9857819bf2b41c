"""dialback verify on the in-memory store, plain and encrypted: a clean history is clean; damage is named."""

from __future__ import annotations

import secrets

import pytest

from services.recovery.verify import verify_tenant
from services.retention.job import run_tenant
from shared import leases
from shared.crypto.keyring import Keyring
from shared.objectstore.encrypted import EncryptedObjectStore
from shared.objectstore.memory import MemoryObjectStore
from tests.services.recovery import verify_cases as C

TENANT = "acme"


@pytest.fixture(params=["plain", "encrypted"])
def stores(request, tmp_path):
    """(store the services use, raw store underneath it where damage is done, encrypted?)"""
    raw = MemoryObjectStore()
    if request.param == "plain":
        return raw, raw, False
    return EncryptedObjectStore(raw, Keyring(secrets.token_bytes(32), tmp_path / "keyring.json")), raw, True


@pytest.fixture
def history(stores):
    store, raw, enc = stores
    sim = C.build_history(store, TENANT)
    return store, raw, enc, sim


def test_a_clean_history_verifies_clean_and_reads_everything(history):
    store, raw, _, sim = history
    seen: list[int] = []
    report = verify_tenant(store, sim.bucket, progress=seen.append, now_ns=sim.now)
    assert report.ok, [str(p) for p in report.problems]
    assert report.groups == [C.GROUP]
    chunks = [i for i in store.list(sim.bucket, "chunks/")]
    segments = [i for i in store.list(sim.bucket, f"groups/{C.GROUP}/journal/")]
    assert chunks and segments
    assert report.objects >= len(chunks) + len(segments) and sum(seen) == report.bytes > 0
    assert not list(store.list(sim.bucket, f"groups/{C.GROUP}/leases/")), "verify released its leases"


@pytest.mark.parametrize("how", ["flip", "truncate", "delete"])
@pytest.mark.parametrize("kind", ["segment", "chunk", "base", "timeline"])
def test_damage_is_detected_and_named(history, how, kind):
    store, raw, enc, sim = history
    target = C.targets(store, sim.bucket)[kind]
    C.damage(raw, sim.bucket, how, target, enc)
    report = verify_tenant(store, sim.bucket, now_ns=sim.now)
    accepted, rule = C.expected(how, kind, enc)
    hits = C.named(report.problems, sim.bucket, target, rule)
    assert not report.ok
    assert hits and {p.what for p in hits} <= accepted, [str(p) for p in report.problems]


def test_a_deleted_older_base_is_a_missing_retained_point(history):
    store, raw, _, sim = history
    target = C.targets(store, sim.bucket)["older_base"]
    raw.delete(sim.bucket, target.key)
    report = verify_tenant(store, sim.bucket, now_ns=sim.now)
    assert [p.what for p in report.problems] and {p.what for p in report.problems} == {"missing"}
    assert all("retained point" in p.detail for p in report.problems)


def test_verify_holds_leases_so_gc_deletes_nothing_under_it(history):
    store, _, _, sim = history
    before = {i.key for i in store.list(sim.bucket)}
    held: list[int] = []

    def during(_n: int) -> None:
        if not held:  # once, while verify is reading: a GC far in the future would drop everything unleased
            held.append(len(leases.live_leases(store, sim.bucket, C.GROUP)))
            run_tenant(store, sim.bucket, now_ns=sim.now + 30 * C.DAY_NS, chunk_size=C.CHUNK, gc=True)

    report = verify_tenant(store, sim.bucket, progress=during, now_ns=sim.now, workers=1)
    assert held[0] >= 2
    assert report.ok, [str(p) for p in report.problems]
    after = {i.key for i in store.list(sim.bucket) if "/leases/" not in i.key}
    assert {k for k in before if "/journal/" in k or k.startswith("chunks/")} <= after


def test_one_group_only_and_unknown_group(history):
    store, _, _, sim = history
    report = verify_tenant(store, sim.bucket, group="nosuch", now_ns=sim.now)
    assert [(p.key, p.what) for p in report.problems][0] == (f"{sim.bucket}/groups/nosuch/manifest.json", "missing")


def test_api_route_reports_per_tenant(tmp_path):
    from fastapi.testclient import TestClient

    from services.recovery.app import create_app
    from services.recovery.config import RecoverySettings
    from shared.auth import OPERATE, TenantAuth, create_tenant

    store = MemoryObjectStore()
    sim = C.build_history(store, TENANT)
    tenants = tmp_path / "tenants.json"
    h = {"Authorization": f"Bearer {create_tenant(tenants, TENANT, scopes=[OPERATE])}"}
    other = {"Authorization": f"Bearer {create_tenant(tenants, 'other', scopes=[OPERATE])}"}
    client = TestClient(create_app(store, TenantAuth(tenants), RecoverySettings(home=tmp_path)))
    assert client.post(f"/v1/groups/{C.GROUP}/verify").status_code == 401
    assert client.post(f"/v1/groups/{C.GROUP}/verify", headers=other).status_code == 404  # not their group
    assert client.post("/v1/groups/bad%20name/verify", headers=h).status_code == 400
    r = client.post(f"/v1/groups/{C.GROUP}/verify", headers=h)
    assert r.status_code == 200 and r.json()["ok"] and r.json()["objects"] > 0
    target = C.targets(store, sim.bucket)["segment"]
    C.damage(store, sim.bucket, "delete", target)
    body = client.post(f"/v1/groups/{C.GROUP}/verify", headers=h).json()
    assert not body["ok"] and {"key": f"{sim.bucket}/{target.key}", "what": "missing"} in \
        [{k: p[k] for k in ("key", "what")} for p in body["problems"]]


def test_a_verify_longer_than_its_lease_ttl_keeps_renewing_it():
    import time as _time

    store = MemoryObjectStore()
    sim = C.build_history(store, TENANT)
    t0, live_late = _time.monotonic(), []

    def slow(_n: int) -> None:
        _time.sleep(0.02)
        if _time.monotonic() - t0 > 1.0:  # well past the 0.4 s TTL
            live_late.append(len(leases.live_leases(store, sim.bucket, C.GROUP)))

    report = verify_tenant(store, sim.bucket, progress=slow, workers=1, lease_ttl_s=0.4, now_ns=sim.now)
    assert report.ok and live_late and min(live_late) >= 2


def test_gc_leftovers_and_in_flight_segments_are_not_faults(history):
    store, _, _, sim = history
    from shared import keys
    from shared.journal import read_timeline

    entries = sorted(read_timeline(store, sim.bucket, C.GROUP), key=lambda e: e.first_seq)
    # a segment GC has hidden (entry deleted) but not yet deleted, before the journal's start
    old = keys.segment_key(C.GROUP, 1, entries[0].first_seq - 1)
    store.put(sim.bucket, old, b"left for the next GC")
    # a segment whose entry is not written yet (a flush in flight)
    new = keys.segment_key(C.GROUP, entries[-1].last_seq + 1, entries[-1].last_seq + 9)
    store.put(sim.bucket, new, b"entry comes next")
    # a segment superseded by two entries after a crash (its range is covered by their union)
    a, b = entries[1], entries[2]
    store.put(sim.bucket, keys.segment_key(C.GROUP, a.first_seq, b.last_seq), b"superseded")
    report = verify_tenant(store, sim.bucket, now_ns=sim.now)
    assert report.ok, [str(p) for p in report.problems]


def test_no_false_alarm_over_a_long_history_with_a_policy_change():
    """Four simulated days, the job every 3 simulated hours, the policy shortened mid-way: every verify
    between runs is clean (GC's work is never mistaken for damage)."""
    from services.retention.policy import HOUR_NS, Policy, write_policy
    from tests.services.retention.sim import SimGroup

    store = MemoryObjectStore()
    sim = SimGroup(store, TENANT, C.GROUP, C.VOLUMES, C.T0, seed=9)
    write_policy(store, sim.bucket, C.GROUP, Policy(anypoint_hours=6, hourly_days=1.5, daily_weeks=1))
    sim.initial_sync()
    runs = 0
    for step in range(1, 4 * 8 + 1):
        sim.advance(C.T0 + step * 3 * HOUR_NS, mean_gap_ns=15 * 60 * 10**9)
        run_tenant(store, sim.bucket, now_ns=sim.now, chunk_size=C.CHUNK, lease_now_ns=sim.now)
        if step == 16:
            write_policy(store, sim.bucket, C.GROUP, Policy(anypoint_hours=4, hourly_days=1, daily_weeks=1))
        report = verify_tenant(store, sim.bucket, now_ns=sim.now)
        assert report.ok, (step, [str(p) for p in report.problems])
        runs += 1
    bases = [i for i in store.list(sim.bucket, f"groups/{C.GROUP}/bases/")]
    assert runs == 32 and len(bases) > 10
