"""A group whose manifest was lost keeps every chunk its bases reference, and the manifest comes back.

Issue 13, defect 5: GC marked chunks only from groups with a manifest but swept the whole tenant.
"""

from __future__ import annotations

import pytest

from services.retention.gc import gc_tenant
from services.retention.job import run_tenant
from services.retention.policy import DAY_NS, HOUR_NS, Policy, write_policy
from shared import bases as B
from shared import keys
from shared.journal import read_manifest
from shared.objectstore.memory import MemoryObjectStore
from tests.services.retention.sim import SimGroup

TENANT, GROUP = "acme", "db"
VOLUMES = {"disk0": 1 << 20, "disk1": 512 << 10}
T0 = 20_100 * DAY_NS + 3 * HOUR_NS
POLICY = Policy(anypoint_hours=2, hourly_days=0.5, daily_weeks=0)
CHUNK = 64 << 10


def build(store, tenant: str = TENANT) -> SimGroup:
    """Several bases of one group; unchanged chunks are shared between them (content addressing)."""
    sim = SimGroup(store, tenant, GROUP, VOLUMES, T0, seed=13)
    write_policy(store, sim.bucket, GROUP, POLICY)
    sim.initial_sync()
    sim.advance(T0 + 10 * HOUR_NS, mean_gap_ns=20 * 60 * 10**9)
    run_tenant(store, sim.bucket, now_ns=sim.now, chunk_size=CHUNK, chunk_grace_s=0)
    bases = B.read_bases(store, sim.bucket, GROUP)
    shared = set.intersection(*(b.chunk_ids() for b in bases))
    assert len(bases) >= 3 and shared, "the scenario needs several bases sharing chunks"
    return sim


def assert_every_base_reads(store, sim: SimGroup) -> None:
    bases = B.read_bases(store, sim.bucket, GROUP)
    assert bases
    for b in bases:
        want = sim.reference(b.sequence)
        for v, vc in b.volumes.items():
            got = b"".join(B.read_volume_chunk(store, sim.bucket, b, v, i) for i in range(len(vc.chunks)))
            assert got == want[v], f"base {b.sequence} volume {v} reads other bytes"


def test_gc_keeps_chunks_of_a_group_without_manifest_and_the_job_rebuilds_it():
    store = MemoryObjectStore()
    sim = build(store)
    manifest = store.get(sim.bucket, keys.manifest_key(GROUP))
    chunks_before = {i.key for i in store.list(sim.bucket, keys.CHUNKS_PREFIX)}
    store.delete(sim.bucket, keys.manifest_key(GROUP))
    # GC alone (no rebuild first), with no grace: only marking can keep the chunks.
    stats = gc_tenant(store, sim.bucket, now_ns=sim.now, chunk_grace_s=0)
    assert stats.chunks_deleted == 0, stats
    assert {i.key for i in store.list(sim.bucket, keys.CHUNKS_PREFIX)} == chunks_before
    assert_every_base_reads(store, sim)
    # The job rebuilds the manifest from the newest base, then rolls up and collects as usual.
    sim.advance(sim.now + 3 * HOUR_NS, mean_gap_ns=20 * 60 * 10**9)
    res = run_tenant(store, sim.bucket, now_ns=sim.now, chunk_size=CHUNK, chunk_grace_s=0)
    assert res.manifests_rebuilt == [GROUP]
    assert store.get(sim.bucket, keys.manifest_key(GROUP)) == manifest
    assert read_manifest(store, sim.bucket, GROUP) == VOLUMES
    assert res.rollups[GROUP].bases_built > 0 and res.gc.bases_deleted > 0  # the group is retained again
    assert_every_base_reads(store, sim)
    live = set().union(*(b.chunk_ids() for b in B.read_bases(store, sim.bucket, GROUP)))
    assert {i.key.rsplit("/", 1)[-1] for i in store.list(sim.bucket, keys.CHUNKS_PREFIX)} == live


def test_unreferenced_chunks_inside_the_grace_period_stay():
    clock = [10**18]  # the store's clock, injected: objects can be aged
    store = MemoryObjectStore(clock=lambda: clock[0])
    store.ensure_bucket("b")
    old = B.put_chunk(store, "b", b"old" * 1000)
    clock[0] += 3600 * 10**9
    young = B.put_chunk(store, "b", b"young" * 1000)  # e.g. a rollup in another process, base not written yet
    stats = gc_tenant(store, "b", now_ns=0, chunk_grace_s=1800, wall_now_ns=clock[0] + 10**9)
    assert (stats.chunks_deleted, stats.chunks_young) == (1, 1)
    assert not store.exists("b", keys.chunk_key(old)) and store.exists("b", keys.chunk_key(young))
    stats = gc_tenant(store, "b", now_ns=0, chunk_grace_s=1800, wall_now_ns=clock[0] + 1801 * 10**9)
    assert stats.chunks_deleted == 1 and not store.exists("b", keys.chunk_key(young))
    with pytest.raises(ValueError, match="chunk_grace_s"):
        gc_tenant(store, "b", now_ns=0, chunk_grace_s=-1)


def test_manifest_rewritten_by_the_control_writer_after_loss():
    import json

    from services.retention.manifests import ManifestWriter

    store = MemoryObjectStore()
    w = ManifestWriter(store)
    event = json.dumps({"type": "GroupRegistered", "group": GROUP,
                        "volumes": [{"volume": "disk0", "size": 4096}]}).encode()
    assert w.handle(TENANT, event) == GROUP
    store.delete("dialback-acme", keys.manifest_key(GROUP))
    assert w.handle(TENANT, event) == GROUP  # the cache no longer hides a lost manifest
    assert read_manifest(store, "dialback-acme", GROUP) == {"disk0": 4096}
    assert w.handle(TENANT, event) is None  # unchanged and present: not rewritten


@pytest.mark.integration
def test_lost_manifest_on_minio(minio_store):
    import uuid

    sim = build(minio_store, f"lost{uuid.uuid4().hex[:8]}")
    manifest = minio_store.get(sim.bucket, keys.manifest_key(GROUP))
    minio_store.delete(sim.bucket, keys.manifest_key(GROUP))
    stats = gc_tenant(minio_store, sim.bucket, now_ns=sim.now, chunk_grace_s=0)
    assert stats.chunks_deleted == 0, stats
    assert_every_base_reads(minio_store, sim)
    res = run_tenant(minio_store, sim.bucket, now_ns=sim.now, chunk_size=CHUNK, chunk_grace_s=0)
    assert res.manifests_rebuilt == [GROUP] and minio_store.get(sim.bucket, keys.manifest_key(GROUP)) == manifest
    assert_every_base_reads(minio_store, sim)
