"""Kafka offsets are never committed past records that are not durable in MinIO."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition

from deploy.local.process import terminate
from shared.auth import create_tenant
from shared.frames import data_record
from shared.bus.kafka import Producer, consumer, ensure_topics
from shared.journal import last_sequence
from shared.tenancy import control_topic, tenant_bucket, writes_topic
from tests.services.retention.helpers import batches_of

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]


def test_committed_offsets_never_pass_durable_records(kafka_bootstrap, minio_store, stack_env, tmp_path):
    tenant = f"co{random.randrange(10**6):06d}"
    tenants = tmp_path / "tenants.json"
    create_tenant(tenants, tenant)
    topic = writes_topic(tenant)
    ensure_topics(kafka_bootstrap, [topic, control_topic(tenant)])
    app_id = f"retention-{tenant}"
    # Long segment age: records sit consumed-but-buffered for seconds while faust commits every 0.5 s.
    env = {**os.environ, **stack_env, "DIALBACK_HOME": str(tmp_path), "DIALBACK_TENANTS_FILE": str(tenants),
           "DIALBACK_RETENTION_WEB_PORT": "0", "DIALBACK_RETENTION_SEGMENT_AGE": "3",
           "DIALBACK_RETENTION_SEGMENT_BYTES": str(64 << 10), "DIALBACK_RETENTION_COMPRESS": "false",
           "DIALBACK_RETENTION_APP_ID": app_id}
    proc = subprocess.Popen([sys.executable, "-m", "services.retention"], cwd=ROOT, env=env,
                            stdout=open(tmp_path / "r.log", "ab"), stderr=subprocess.STDOUT)
    p = Producer(kafka_bootstrap)
    # Two groups on one partition, so acks of one group could overtake the other's buffered messages.
    # ga's messages are small and wait for the segment age; gb's are big and flush at once by
    # size, so gb's later offsets become durable before ga's earlier ones.
    small = [data_record("d0", s, s, 0, b"s" * 512) for s in range(1, 301)]
    big = [data_record("d1", s, s, 0, bytes(8192)) for s in range(1, 301)]
    recs = {"ga": small, "gb": big}
    msgs = {g: batches_of(r, 10) for g, r in recs.items()}
    last_seq_at: dict[int, tuple[str, int]] = {}  # offset -> (group, last sequence in that message)
    c = consumer(kafka_bootstrap, app_id)
    bucket = tenant_bucket(tenant)
    checks = commits_seen = 0
    try:
        # Warm-up: wait for the worker to consume and commit (group join takes a while).
        d = p.send_sync(topic, msgs["ga"][0], key=b"ga")
        last_seq_at[d.offset] = ("ga", 10)
        deadline = time.monotonic() + 90
        while _committed(c, topic) == 0:
            assert time.monotonic() < deadline, "retention never committed the warm-up message"
            time.sleep(0.3)
        d = p.send_sync(topic, msgs["gb"][0], key=b"gb")
        last_seq_at[d.offset] = ("gb", 10)
        for i in range(1, 30):
            for g in ("ga", "gb") if i % 3 else ("gb", "ga"):
                d = p.send_sync(topic, msgs[g][i], key=g.encode())
                last_seq_at[d.offset] = (g, (i + 1) * 10)
            time.sleep(0.15)
            checks += _check(c, topic, minio_store, bucket, last_seq_at)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            committed = _committed(c, topic)
            checks += _check(c, topic, minio_store, bucket, last_seq_at)
            commits_seen = max(commits_seen, committed)
            if committed >= max(last_seq_at) + 1:
                break
            time.sleep(0.2)
        assert commits_seen == max(last_seq_at) + 1, "retention never committed everything"
        assert checks > 10
    finally:
        c.close()
        terminate(proc)


def _committed(c, topic) -> int:
    off = c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    return max(off, 0)


def _check(c, topic, store, bucket, last_seq_at) -> int:
    committed = _committed(c, topic)  # read the commit first, then what is durable
    if committed == 0:
        return 0
    durable = {g: (last_sequence(store, bucket, g) if store.bucket_exists(bucket) else 0) for g in ("ga", "gb")}
    for off in range(committed):
        g, last = last_seq_at[off]
        assert last <= durable[g], f"offset {off} committed but {g} is durable only through {durable[g]} < {last}"
    return 1
