"""Storage accounting and the storage meters on the in-memory store (plain and encrypted)."""

from __future__ import annotations

import secrets

from services.metering.aggregator import Aggregator, Policy as MeterPolicy
from services.retention.accounting import measure_tenant
from services.retention.job import run_tenant
from services.retention.usage_events import HOUR_NS, UsageSampler, event_id
from shared import keys
from shared.crypto.keyring import Keyring
from shared.objectstore.encrypted import EncryptedObjectStore
from shared.objectstore.memory import MemoryObjectStore
from shared.usage import MemoryEmitter, Meter, subject
from tests.services.recovery import verify_cases as C
from tests.services.retention.sim import SimGroup

TENANT = "acme"


def test_accounting_adds_up_to_the_bucket_and_ratios_are_real():
    store = MemoryObjectStore()
    sim = C.build_history(store, TENANT)
    u = measure_tenant(store, sim.bucket)
    g = u.groups[C.GROUP]
    assert g.logical_bytes == sum(C.VOLUMES.values()) == u.logical_bytes
    assert {v: x.logical_bytes for v, x in g.volumes.items()} == C.VOLUMES
    everything = {i.key: i.size for i in store.list(sim.bucket)}
    assert u.bucket_bytes == sum(everything.values())
    assert u.stored_bytes + u.unattributed_bytes == u.bucket_bytes
    assert g.segment_bytes == sum(s for k, s in everything.items() if "/journal/" in k)
    assert g.chunk_bytes == sum(s for k, s in everything.items() if k.startswith(keys.CHUNKS_PREFIX))  # GC swept the rest
    # volumes split the journal and the chunks between them, to the byte
    assert sum(v.stored_bytes for v in g.volumes.values()) == g.segment_bytes + g.chunk_bytes
    payload = sum(r.length for r in sim.records if r.kind.name == "DATA"
                  and any(k for k in everything if "/journal/" in k and keys.parse_range(k)[0] <= r.sequence
                          <= keys.parse_range(k)[1]))
    assert g.payload_bytes == payload
    assert g.compression_ratio == g.payload_bytes / g.segment_bytes  # random writes: about 1
    assert g.dedup_ratio and g.dedup_ratio > 1.0              # bases share unchanged chunks
    assert g.chunk_refs > g.unique_chunks


def test_a_compressible_initial_sync_shows_in_the_compression_ratio():
    store = MemoryObjectStore()
    sim = SimGroup(store, TENANT, C.GROUP, C.VOLUMES, C.T0, seed=3)
    sim.initial_sync()  # about half of it repeated 4 KiB blocks
    g = measure_tenant(store, sim.bucket).groups[C.GROUP]
    assert g.payload_bytes == sum(C.VOLUMES.values())
    assert g.compression_ratio > 1.5 and g.dedup_ratio is None  # no base yet


def test_two_groups_split_shared_chunks_exactly(tmp_path):
    store = EncryptedObjectStore(MemoryObjectStore(), Keyring(secrets.token_bytes(32), tmp_path / "k.json"))
    sim = C.build_history(store, TENANT)
    # a second group whose base references the same chunks as the first (a clone)
    from shared import bases as B
    from shared.journal import manifest_doc
    base = B.read_bases(store, sim.bucket, C.GROUP)[-1]
    store.put(sim.bucket, keys.manifest_key("clone"), manifest_doc("clone", C.VOLUMES))
    B.put_base(store, sim.bucket, B.Base("clone", base.sequence, base.timestamp_ns, base.chunk_size, base.volumes))
    u = measure_tenant(store, sim.bucket)
    raw = {i.key: i.size for i in store.inner.list(sim.bucket)}
    assert u.bucket_bytes == sum(raw.values())  # ciphertext sizes, what the backend holds
    chunks = sum(s for k, s in raw.items() if k.startswith(keys.CHUNKS_PREFIX))
    assert u.groups[C.GROUP].chunk_bytes + u.groups["clone"].chunk_bytes == chunks
    assert 0 < u.groups["clone"].chunk_bytes < chunks


def test_sampler_emits_deterministic_events_once_per_hour_that_metering_counts_once():
    store = MemoryObjectStore()
    sim = C.build_history(store, TENANT)
    em = MemoryEmitter("/dialback/retention")
    sampler = UsageSampler(em, catchup_hours=3)
    now = sim.now + 10 * 60 * 10**9
    hour = now // HOUR_NS
    sampler.run(store, sim.bucket, TENANT, now)
    first = list(em.events)
    gauges = [e for e in first if e.meter in (Meter.LOGICAL_BYTES, Meter.STORED_BYTES)]
    secs = [e for e in first if e.meter is Meter.PROTECTED_VOLUME_SECONDS]
    assert {(e.meter, e.subject) for e in gauges} == {(m, subject(TENANT, "groups", C.GROUP))
                                                      for m in (Meter.LOGICAL_BYTES, Meter.STORED_BYTES)}
    assert {e.subject for e in secs} == {subject(TENANT, "groups", C.GROUP, "volumes", v) for v in C.VOLUMES}
    assert len(secs) == 3 * len(C.VOLUMES) and all(e.quantity == 3600 for e in secs)
    subj = subject(TENANT, "groups", C.GROUP)
    assert next(e for e in gauges if e.meter is Meter.LOGICAL_BYTES).id == \
        event_id(TENANT, subj, Meter.LOGICAL_BYTES, hour)
    sampler.run(store, sim.bucket, TENANT, now + 60 * 10**9)  # same hour: nothing new is due
    assert em.events == first
    restarted = UsageSampler(em)  # a restart: re-sends the same ids
    restarted.run(store, sim.bucket, TENANT, now + 120 * 10**9)
    again = em.events[len(first):]
    assert again and {e.id for e in again} <= {e.id for e in first}
    agg = Aggregator(MeterPolicy(wall_clock=False, lateness=0))
    out = agg.process([(None, e.to_json(), i) for i, e in enumerate(em.events)], now=now / 1e9, tag="1")
    assert out.accepted == len(first) and out.duplicates == len(again) and not out.rejects
    stored = [b for k, b in agg.buckets.items() if k[1] == Meter.STORED_BYTES.value]
    assert [b.quantity for b in stored] == [measure_tenant(store, sim.bucket).groups[C.GROUP].stored_bytes]


def test_job_emits_through_the_sampler_and_first_hour_is_partial():
    store = MemoryObjectStore()
    sim = SimGroup(store, TENANT, C.GROUP, C.VOLUMES, C.T0, seed=3)
    sim.initial_sync()
    em = MemoryEmitter("/dialback/retention")
    since = C.T0  # the initial sync's timestamp: protection began there
    now = (C.T0 // HOUR_NS + 2) * HOUR_NS + 5 * 10**9  # two complete hours after the start
    res = run_tenant(store, sim.bucket, now_ns=now, chunk_size=C.CHUNK, gc=False,
                     usage=UsageSampler(em, catchup_hours=5), tenant=TENANT)
    assert res.usage is not None and res.usage_error is None
    secs = sorted((e.time, e.quantity) for e in em.events if e.meter is Meter.PROTECTED_VOLUME_SECONDS
                  and e.subject.endswith("/disk0"))
    first_hour_end = (since // HOUR_NS + 1) * HOUR_NS
    assert [q for _, q in secs] == [(first_hour_end - since) // 10**9, 3600]


def test_damaged_objects_are_counted_and_listed_not_fatal():
    store = MemoryObjectStore()
    sim = C.build_history(store, TENANT)
    t = C.targets(store, sim.bucket)
    before = measure_tenant(store, sim.bucket)
    C.damage(store, sim.bucket, "flip", t["base"])
    C.damage(store, sim.bucket, "truncate", t["segment"])
    after = measure_tenant(store, sim.bucket)
    assert sorted(after.damaged) == sorted([t["base"].key, t["segment"].key])
    assert after.bucket_bytes < before.bucket_bytes and after.groups[C.GROUP].logical_bytes == before.logical_bytes
    assert after.stored_bytes + after.unattributed_bytes == after.bucket_bytes
