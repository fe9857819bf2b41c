"""The retention job's storage meters on real Kafka and MinIO: read back from the topic, they pass
parse_event, and metering's aggregator counts each (tenant, subject, meter, hour) once despite re-runs
and a restart."""

from __future__ import annotations

import uuid

import pytest

from services.metering.aggregator import Aggregator, Policy as MeterPolicy
from shared.bus.tail import replay
from services.retention.accounting import measure_tenant
from services.retention.app import usage_sampler
from services.retention.config import RetentionSettings
from services.retention.job import run_tenant
from services.retention.usage_events import HOUR_NS
from shared.bus.kafka import ensure_topics
from shared.usage import Meter, parse_event, subject
from tests.services.recovery import verify_cases as C

pytestmark = pytest.mark.integration


def test_job_emits_storage_meters_that_metering_counts_once(kafka_bootstrap, minio_store):
    tenant = f"use{uuid.uuid4().hex[:8]}"
    topic = f"usage.{tenant}"
    ensure_topics(kafka_bootstrap, [topic])
    sim = C.build_history(minio_store, tenant)
    settings = RetentionSettings(kafka_bootstrap=kafka_bootstrap, retention_usage=True, usage_topic=topic,
                                 retention_usage_catchup_hours=2)
    now = sim.now + 10 * 60 * 10**9
    sampler = usage_sampler(settings)
    for dt in (0, 60):  # a second run in the same hour sends nothing new
        res = run_tenant(minio_store, sim.bucket, now_ns=now + dt * 10**9, chunk_size=C.CHUNK, usage=sampler,
                         tenant=tenant)
        assert res.usage_error is None
    restarted = usage_sampler(settings)  # a restart: the same ids again
    run_tenant(minio_store, sim.bucket, now_ns=now + 120 * 10**9, chunk_size=C.CHUNK, usage=restarted, tenant=tenant)

    raw: list[bytes] = []
    replay(kafka_bootstrap, topic, lambda k, v: raw.append(v))
    events = [parse_event(v) for v in raw]
    assert {e.tenant for e in events} == {tenant} and {e.source for e in events} == {"/dialback/retention"}
    ids = {e.id for e in events}
    per_volume = 2 * len(C.VOLUMES)  # two catch-up hours per volume
    assert len(ids) == 2 + per_volume and len(events) == 2 * len(ids)

    agg = Aggregator(MeterPolicy(lateness=0))
    closed = float((now // HOUR_NS + 1) * 3600 + 1)  # metering's clock just after the sampled hour ended
    out = agg.process([(tenant.encode(), v, i) for i, v in enumerate(raw)], now=closed, tag="1")
    assert (out.accepted, out.duplicates, out.rejects) == (len(ids), len(ids), [])
    got = {(k[1], k[4], k[2]): b.quantity for k, b in agg.buckets.items()}
    usage = measure_tenant(minio_store, sim.bucket).groups[C.GROUP]
    g = subject(tenant, "groups", C.GROUP)
    hour = int(now // HOUR_NS)
    assert got[(Meter.LOGICAL_BYTES.value, g, hour)] == sum(C.VOLUMES.values())
    assert got[(Meter.STORED_BYTES.value, g, hour)] == usage.stored_bytes > 0
    for v in C.VOLUMES:
        vs = subject(tenant, "groups", C.GROUP, "volumes", v)
        assert [got[(Meter.PROTECTED_VOLUME_SECONDS.value, vs, h)] for h in (hour - 2, hour - 1)] == [3600, 3600]
    lines = [ln for ln in out.lines if ln.meter == Meter.STORED_BYTES.value]
    assert [ln.quantity for ln in lines] == [usage.stored_bytes]  # the hour closed: one billing line
