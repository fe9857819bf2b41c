"""Retention survives SIGKILL at any moment: real Kafka, real MinIO, real subprocess."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared import keys
from shared.auth import create_tenant
from shared.bus.kafka import Producer, ensure_topics
from shared.journal import iter_segment_records, read_manifest, read_timeline
from shared.tenancy import control_topic, tenant_bucket, writes_topic
from tests.services.retention.helpers import batches_of, random_records

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]


def _start(env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "services.retention"], cwd=ROOT, env=env,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def _timeline_covers(store, bucket, group) -> int:
    if not store.bucket_exists(bucket):
        return 0
    entries = read_timeline(store, bucket, group)
    return max((e.last_seq for e in entries), default=0)


def _wait_for(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_sigkill_mid_stream_loses_and_duplicates_nothing(kafka_bootstrap, minio_store, stack_env, tmp_path):
    tenant = f"rk{random.randrange(10**6):06d}"
    tenants_file = tmp_path / "tenants.json"
    create_tenant(tenants_file, tenant)
    ensure_topics(kafka_bootstrap, [writes_topic(tenant), control_topic(tenant)], partitions=2)
    env = {**os.environ, **stack_env, "DIALBACK_HOME": str(tmp_path), "DIALBACK_TENANTS_FILE": str(tenants_file),
           "DIALBACK_RETENTION_WEB_PORT": "0", "DIALBACK_RETENTION_SEGMENT_AGE": "0.3",
           "DIALBACK_RETENTION_SEGMENT_BYTES": str(256 << 10), "DIALBACK_RETENTION_SESSION_TIMEOUT": "6",
           "DIALBACK_RETENTION_APP_ID": f"retention-{tenant}", "PYTHONUNBUFFERED": "1"}
    producer = Producer(kafka_bootstrap)
    groups = {"g1": random_records(1200, volumes=("disk0", "disk1"), seed=11),
              "g2": random_records(800, volumes=("vol-a",), seed=12)}
    producer.send_sync(control_topic(tenant), json.dumps(
        {"type": "GroupRegistered", "group": "g1", "time": 1,
         "volumes": [{"volume": "disk0", "size": 1 << 20}, {"volume": "disk1", "size": 1 << 20}]}).encode(),
        key=b"group/g1")
    # Interleave the groups' batches the way concurrent agents would.
    queues = {g: batches_of(recs, 10) for g, recs in groups.items()}
    order: list[tuple[str, bytes]] = []
    rng = random.Random(6)
    while any(queues.values()):
        g = rng.choice([g for g in queues if queues[g]])
        order.append((g, queues[g].pop(0)))
    # Ingest-style redelivery: some batches land twice.
    dup_at = set(rng.sample(range(len(order)), 15))
    log = tmp_path / "retention.log"
    proc = _start(env, log)
    bucket = tenant_bucket(tenant)
    kills = 0
    try:
        quarter = len(order) // 4
        held = 0
        for i, (g, b) in enumerate(order):
            producer.send_sync(writes_topic(tenant), b, key=g.encode())
            if i in dup_at:
                producer.send_sync(writes_topic(tenant), b, key=g.encode())
            if i in (quarter, 2 * quarter, 3 * quarter):
                # Kill once this process made something durable (so it was
                # mid-stream, with buffers and uncommitted offsets), restart at once.
                covered = lambda: sum(_timeline_covers(minio_store, bucket, g) for g in groups)  # noqa: E731
                _wait_for(lambda: covered() > held, 90, "progress since the last restart")
                held = covered()
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                kills += 1
                proc = _start(env, log)
        for g, recs in groups.items():
            _wait_for(lambda: _timeline_covers(minio_store, bucket, g) == len(recs), 120, f"{g} fully retained")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert kills == 3
    for g, recs in groups.items():
        entries = read_timeline(minio_store, bucket, g)
        # Entries chain 1..N exactly once, without overlaps or holes.
        assert entries[0].first_seq == 1
        for a, b in zip(entries, entries[1:]):
            assert b.first_seq == a.last_seq + 1, (a, b)
        assert entries[-1].last_seq == len(recs)
        got = []
        for e in entries:
            seg = list(iter_segment_records(minio_store.get(bucket, e.segment)))
            assert [r.sequence for r in seg] == list(range(e.first_seq, e.last_seq + 1))
            assert e.segment == keys.segment_key(g, e.first_seq, e.last_seq)
            got += seg
        assert [(r.sequence, r.volume, r.timestamp_ns, r.offset, r.length, r.kind, r.data()) for r in got] == \
               [(r.sequence, r.volume, r.timestamp_ns, r.offset, r.length, r.kind, r.data()) for r in recs]
    assert read_manifest(minio_store, bucket, "g1") == {"disk0": 1 << 20, "disk1": 1 << 20}
    # Restarted workers resumed from positions their predecessors made durable.
    import re
    resumed = [int(n) for n in re.findall(rb"timeline holds through (\d+)", log.read_bytes())]
    assert sum(1 for n in resumed if n > 0) >= 2, resumed
