"""A sequence gap on the writes topic: nothing past it is committed, the alarm is raised, the resend heals it.

Real Kafka and MinIO, retention as a process. Group ``g`` loses sequences
21-30 (as when Kafka dropped them: retention was down longer than the
topic's retention, or a replica was lost); group ``h`` shares the partition.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from confluent_kafka import TopicPartition

from agent.bridge import bridge_batch
from deploy.local.process import free_port, terminate
from services.recovery.planner import At
from services.recovery.service import Recovery
from shared import keys
from shared.auth import create_tenant
from shared.broken import GROUP_BROKEN, GROUP_REPAIRED
from shared.bus.kafka import Producer, consumer, ensure_topics
from shared.frames import Kind, Record, data_record, encode_batch
from shared.journal import last_sequence
from shared.tenancy import control_topic, tenant_bucket, writes_topic
from tests.services.retention.helpers import bookmark

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
SIZE = 256 << 10


def _records(n: int) -> list[Record]:
    rng = random.Random(7)
    recs = [Record("d0", 1, 1000, 0, SIZE, Kind.ZEROES), bookmark("d0", 2, 2000, "dialback.initial-sync-complete")]
    for s in range(3, n + 1):
        off = rng.randrange(0, SIZE // 4096) * 4096
        recs.append(data_record("d0", s, s * 1000, off, rng.randbytes(4096)))
    return recs


def _image(recs: list[Record], through: int) -> str:
    img = bytearray(SIZE)
    for r in recs:
        if r.sequence <= through and r.kind == Kind.DATA:
            img[r.offset:r.offset + r.length] = r.data()
    return hashlib.sha256(img).hexdigest()


def _committed(c, topic) -> int:
    return max(c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset, 0)


def _wait(cond, what: str, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _control_events(bootstrap: str, topic: str) -> list[tuple[bytes, dict]]:
    c = consumer(bootstrap, f"gap-test-{uuid.uuid4().hex}", **{"enable.partition.eof": True})
    out = []
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        while True:
            m = c.poll(5)
            if m is None or m.error():
                break
            out.append((m.key(), json.loads(m.value())))
    finally:
        c.close()
    return out


def _metric(port: int, name: str) -> float | None:
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def _healing(recs: list[Record], how: str) -> tuple[list[bytes], int]:
    """What ingest produces after the rewind to 21, and the point to check against the disk at 50.

    ``resend``: the agent still spools 21-50 and sends them again. ``resync``: its spool starts
    past 50, so it bridges 21-50 with no-op records (agent.bridge) and ships every chunk of the
    disk again, then the resync-complete bookmark.
    """
    if how == "resend":
        return [encode_batch(recs[i - 1:i + 9]) for i in (21, 31, 41)], 50
    img = bytearray(SIZE)
    for r in recs:
        if r.kind == Kind.DATA:
            img[r.offset:r.offset + r.length] = r.data()
    batch, last = bridge_batch("d0", 21, 50, 21, 50_000)
    assert last == 50
    chunk = 64 << 10
    full = [data_record("d0", 51 + i, 51_000 + i, i * chunk, bytes(img[i * chunk:(i + 1) * chunk]))
            for i in range(SIZE // chunk)]
    seq = 51 + len(full)
    done = bookmark("d0", seq, seq * 1000, f"dialback.resync-complete.{seq}")
    return [batch, encode_batch(full + [done])], seq


@pytest.mark.parametrize("how", ["resend", "resync"])
def test_gap_holds_commits_raises_alarm_and_resend_heals(kafka_bootstrap, minio_store, stack_env, tmp_path, how):
    tenant = f"gp{random.randrange(10**6):06d}"
    tenants = tmp_path / "tenants.json"
    create_tenant(tenants, tenant)
    topic, ctl = writes_topic(tenant), control_topic(tenant)
    ensure_topics(kafka_bootstrap, [topic, ctl])
    app_id, port = f"retention-{tenant}", free_port()
    env = {**os.environ, **stack_env, "DIALBACK_HOME": str(tmp_path), "DIALBACK_TENANTS_FILE": str(tenants),
           "DIALBACK_RETENTION_WEB_PORT": str(port), "DIALBACK_RETENTION_SEGMENT_AGE": "0.3",
           "DIALBACK_RETENTION_APP_ID": app_id, "DIALBACK_RETENTION_JOB_INTERVAL": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "services.retention"], cwd=ROOT, env=env,
                            stdout=open(tmp_path / "r.log", "ab"), stderr=subprocess.STDOUT)
    p = Producer(kafka_bootstrap)
    recs = _records(50)
    msg = {i: encode_batch(recs[i - 1:i + 9]) for i in range(1, 51, 10)}  # first sequence -> batch
    bucket = tenant_bucket(tenant)
    c = consumer(kafka_bootstrap, app_id)
    try:
        p.send_sync(ctl, json.dumps({"type": "GroupRegistered", "group": "g", "volumes": [
            {"volume": "d0", "size": SIZE}]}).encode(), key=b"group/g")
        for first in (1, 11):
            p.send_sync(topic, msg[first], key=b"g")
        gap_at = p.send_sync(topic, msg[31], key=b"g").offset  # 21-30 never reach the topic
        p.send_sync(topic, msg[41], key=b"g")
        h = [data_record("d9", s, s, 0, b"h" * 512) for s in range(1, 11)]
        end = p.send_sync(topic, encode_batch(h), key=b"h").offset + 1

        # Other groups go on: h is durable although it sits behind g's gap in the partition.
        _wait(lambda: minio_store.bucket_exists(bucket) and last_sequence(minio_store, bucket, "h") == 10,
              "group h durable")
        _wait(lambda: _committed(c, topic) >= gap_at, "commits up to the gap")
        time.sleep(2.0)  # several commit intervals (0.5 s): nothing may move past the gap message
        assert _committed(c, topic) == gap_at, "an offset past the sequence gap was committed"
        assert last_sequence(minio_store, bucket, "g") == 20

        # The alarm: durable mark, control event, gauge, healthz, recovery's points.
        _wait(lambda: minio_store.exists(bucket, keys.broken_key("g")), "broken mark in the store")
        ev = _wait(lambda: [e for k, e in _control_events(kafka_bootstrap, ctl) if e["type"] == GROUP_BROKEN],
                   "GroupBroken event")
        assert ev[0]["group"] == "g" and ev[0]["expected"] == 21 and ev[0]["seen"] == 31
        assert _metric(port, "dialback_retention_groups_broken") == 1.0
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert health.json()["groups_broken"] == 1
        assert tenant not in health.text  # an unauthenticated page names no tenant (tests/security)
        rec = Recovery(minio_store, work_dir=tmp_path)
        pts = rec.points(tenant, "g")
        assert pts["broken"]["expected"] == 21 and pts["latest"]["sequence"] == 20

        # What ingest produces once the agent resent from 21 (or bridged and resynced): the journal heals.
        healing, through = _healing(recs, how)
        for m in healing:
            end = p.send_sync(topic, m, key=b"g").offset + 1
        _wait(lambda: last_sequence(minio_store, bucket, "g") == through, f"journal complete through {through}")
        _wait(lambda: _committed(c, topic) == end, "commits past the healed gap")
        _wait(lambda: not minio_store.exists(bucket, keys.broken_key("g")), "broken mark cleared")
        ev = _wait(lambda: [e for k, e in _control_events(kafka_bootstrap, ctl) if e["type"] == GROUP_REPAIRED],
                   "GroupRepaired event")
        assert ev[0]["expected"] == 21 and ev[0]["through"] >= 30
        assert _metric(port, "dialback_retention_groups_broken") == 0.0
        assert rec.points(tenant, "g")["broken"] is None

        # Points after the gap are byte-exact (after a resync: from its resync-complete bookmark on).
        for at, want in ((35, 35), (50, 50)) if how == "resend" else ((through, 50),):
            plan = rec.plan(tenant, "g", None, At.of(sequence=at))
            out = tmp_path / f"d0-{at}.img"
            rec.to_files(plan, {"d0": out})
            assert hashlib.sha256(out.read_bytes()).hexdigest() == _image(recs, want), f"image at {at} differs"
    finally:
        c.close()
        terminate(proc)
