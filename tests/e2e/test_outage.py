"""Ingest or Kafka down while writes continue: the tap keeps acknowledging and
spooling; after the restart every write is recoverable and none is there twice."""

from __future__ import annotations

import random
import time

import pytest

from agent.nbd.client import connect
from shared import keys
from shared.tenancy import tenant_bucket
from deploy.local.pipeline import sha256_file

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SIZE = 8 << 20


def _write_burst(agent, rng: random.Random, count: int) -> None:
    with connect(agent.nbd_socket, None, "d0") as c:
        for _ in range(count):
            n = rng.choice([4096, 65536])
            c.pwrite(rng.randbytes(n), rng.randrange(0, SIZE - n))
        c.flush()


def _assert_journal_exactly_once(store, tenant: str, group: str, last: int) -> None:
    ranges = [keys.parse_range(o.key) for o in store.list(tenant_bucket(tenant), keys.timeline_prefix(group))]
    assert ranges, "no timeline entries"
    assert ranges[0][0] == 1
    for (a, b), (c, _) in zip(ranges, ranges[1:]):
        assert c == b + 1, f"timeline not contiguous/unique: {a}-{b} then {c}"
    assert ranges[-1][1] >= last


def _setup(pipeline, tmp_path):
    pipeline.start()
    disk = tmp_path / "d0.img"
    disk.write_bytes(bytes(SIZE))
    agent = pipeline.start_agent("outage", {"d0": disk})
    agent.wait_shipped()
    return agent, disk


def _recover_and_compare(pipeline, agent, disk, tmp_path, store):
    last = agent.wait_shipped(timeout=180)
    pipeline.wait_recoverable("outage", last, timeout=180)
    out = tmp_path / "latest.img"
    r = pipeline.download("outage", "d0", out, sequence=last)
    assert r.status_code == 200, r.text
    assert sha256_file(out) == sha256_file(disk)
    _assert_journal_exactly_once(store, pipeline.tenant, "outage", last)


def test_ingest_down_writes_spool_and_ship_after_restart(pipeline, tmp_path, minio_store):
    agent, disk = _setup(pipeline, tmp_path)
    rng = random.Random(5)
    pipeline.service("ingest").stop()
    _write_burst(agent, rng, 150)  # acknowledged by the tap with ingest down
    time.sleep(1.0)
    g = agent.group_status()
    assert g["last_sequence"] > g["acked_through"], "writes should be waiting in the spool"
    assert g["rpo_seconds"] > 0.5
    assert g["spool_records"] > 0
    pipeline.service("ingest").start()
    _write_burst(agent, rng, 20)
    _recover_and_compare(pipeline, agent, disk, tmp_path, minio_store)


def test_kafka_down_writes_spool_and_ship_after_restart(pipeline, tmp_path, minio_store, kafka_server):
    assert kafka_server.managed is not None, "this test stops Kafka: it needs the Kafka the tests started"
    agent, disk = _setup(pipeline, tmp_path)
    rng = random.Random(6)
    kafka_server.stop()
    try:
        _write_burst(agent, rng, 100)
        time.sleep(2.0)
        g = agent.group_status()
        assert g["last_sequence"] > g["acked_through"], "ingest must not acknowledge while Kafka is down"
    finally:
        kafka_server.start()
    _write_burst(agent, rng, 20)
    _recover_and_compare(pipeline, agent, disk, tmp_path, minio_store)
