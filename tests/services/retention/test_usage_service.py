"""The retention service itself (a real process) with DIALBACK_RETENTION_USAGE=true: its job puts the
storage gauges on the usage topic, and after a restart it re-sends the same ids, which metering counts once."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deploy.local.process import terminate
from services.metering.aggregator import Aggregator, Policy as MeterPolicy
from shared.bus.tail import replay
from shared import keys
from shared.auth import create_tenant
from shared.bus.kafka import Producer, ensure_topics
from shared.journal import last_sequence, manifest_doc
from shared.tenancy import control_topic, tenant_bucket, writes_topic
from shared.usage import Meter, parse_event, subject
from tests.services.retention.helpers import batches_of, random_records

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]


def _wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _events(bootstrap, topic):
    raw: list[bytes] = []
    replay(bootstrap, topic, lambda k, v: raw.append(v))
    return raw


def _start(env, log):
    return subprocess.Popen([sys.executable, "-m", "services.retention"], cwd=ROOT, env=env,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def _stop(proc):
    terminate(proc)


def test_service_emits_gauges_and_a_restart_is_counted_once(kafka_bootstrap, minio_store, stack_env, tmp_path):
    tenant = f"us{random.randrange(10**6):06d}"
    topic = f"usage.{tenant}"
    tenants = tmp_path / "tenants.json"
    create_tenant(tenants, tenant)
    ensure_topics(kafka_bootstrap, [writes_topic(tenant), control_topic(tenant), topic])
    bucket = tenant_bucket(tenant)
    minio_store.ensure_bucket(bucket)
    minio_store.put(bucket, keys.manifest_key("g"), manifest_doc("g", {"disk0": 1 << 20}))
    env = {**os.environ, **stack_env, "DIALBACK_HOME": str(tmp_path), "DIALBACK_TENANTS_FILE": str(tenants),
           "DIALBACK_RETENTION_WEB_PORT": "0", "DIALBACK_RETENTION_APP_ID": f"retention-{tenant}",
           "DIALBACK_RETENTION_JOB_INTERVAL": "1", "DIALBACK_RETENTION_USAGE": "true",
           "DIALBACK_USAGE_TOPIC": topic}
    log = tmp_path / "r.log"
    proc = _start(env, log)
    gauges = lambda raw: [e for e in map(parse_event, raw) if e.meter is Meter.STORED_BYTES]  # noqa: E731
    try:
        p = Producer(kafka_bootstrap)
        for m in batches_of(random_records(40, seed=4), 10):
            p.send_sync(writes_topic(tenant), m, key=b"g")
        _wait(lambda: last_sequence(minio_store, bucket, "g") == 40, 120, "records retained")
        _wait(lambda: any(e.quantity > 0 for e in gauges(_events(kafka_bootstrap, topic))), 120,
              "a stored-bytes sample of the retained journal")
        _stop(proc)
        first = _events(kafka_bootstrap, topic)
        proc = _start(env, log)
        _wait(lambda: len(_events(kafka_bootstrap, topic)) > len(first), 120, "the restarted service's samples")
    finally:
        _stop(proc)
    raw = _events(kafka_bootstrap, topic)
    events = [parse_event(v) for v in raw]
    g, vol = subject(tenant, "groups", "g"), subject(tenant, "groups", "g", "volumes", "disk0")
    assert {(e.subject, e.meter) for e in events} == {(g, Meter.LOGICAL_BYTES), (g, Meter.STORED_BYTES),
                                                      (vol, Meter.PROTECTED_VOLUME_SECONDS)}
    # the records are stamped in 1970: the volume counts as protected for every catch-up hour
    assert {e.quantity for e in events if e.meter is Meter.PROTECTED_VOLUME_SECONDS} == {3600}
    agg = Aggregator(MeterPolicy(lateness=0))
    out = agg.process([(None, v, i) for i, v in enumerate(raw)], now=time.time(), tag="1")
    things = {(e.subject, e.meter, int(e.time.timestamp() // 3600)) for e in events}
    assert not out.rejects and out.duplicates == len(raw) - len(things) >= 2  # the restart re-sent its ids
    assert out.accepted == len(things)  # one count per (subject, meter, hour), however many runs
    logical = [b.quantity for k, b in agg.buckets.items() if k[1] == Meter.LOGICAL_BYTES.value]
    assert set(logical) == {1 << 20}
