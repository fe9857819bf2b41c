"""Multi-batch bodies against a real Kafka: one message per batch, one BatchAcked per body, replayable."""

from __future__ import annotations

import json
import time

import pytest

from shared.bodies import BATCHES_CONTENT_TYPE, encode_body
from shared.frames import decode_batch
from shared.tenancy import control_topic, writes_topic

from .ingest_helpers import batch
from .kafka_helpers import read_topic
from .test_ingest_kafka import live  # noqa: F401 - fixture

pytestmark = pytest.mark.integration


def post_body(lv, c, group, batches):
    return c.post(f"/v1/groups/{group}/batches", content=encode_body(batches),
                  headers={**lv.headers, "Content-Type": BATCHES_CONTENT_TYPE})


def test_body_batches_land_in_order_and_restart_replays_the_body_ack(live):  # noqa: F811
    with live.client() as c:
        live.register(c, "g1")
        assert post_body(live, c, "g1", [batch(1, 10), batch(11, 12), batch(13, 30)]).json() == {"acked_through": 30}
        # a resend of the same body: acknowledged, nothing produced
        assert post_body(live, c, "g1", [batch(1, 10), batch(11, 12), batch(13, 30)]).json() == {"acked_through": 30}
    with live.client() as c:  # new app and producer: state replayed from the control topic
        assert c.get("/v1/groups/g1", headers=live.headers).json()["acked_through"] == 30
        r = post_body(live, c, "g1", [batch(20, 35), batch(36, 40)])  # overlap: only 31..40 produced
        assert r.json() == {"acked_through": 40}
    msgs = read_topic(live.bootstrap, writes_topic(live.tenant))
    assert [(m[2]["first_seq"], m[2]["last_seq"]) for m in msgs] == [
        (b"1", b"10"), (b"11", b"12"), (b"13", b"30"), (b"31", b"35"), (b"36", b"40")]
    assert len({m[3] for m in msgs}) == 1, "one group stays in one partition"
    assert [r.sequence for m in msgs for r in decode_batch(m[1])] == list(range(1, 41))
    acks = [json.loads(v) for _, v, _, _ in read_topic(live.bootstrap, control_topic(live.tenant))]
    assert [e["acked_through"] for e in acks if e["type"] == "BatchAcked"] == [30, 40]


def test_throughput_eight_batch_bodies(live, capsys):  # noqa: F811
    per, n, k = 960, 24, 8  # same 24 x ~1 MiB batches as test_throughput_one_mib_batches, 8 per body
    batches = [batch(i * per + 1, (i + 1) * per, size=1024) for i in range(n)]
    with live.client() as c:
        live.register(c, "g1")
        t0 = time.perf_counter()
        for j in range(0, n, k):
            assert post_body(live, c, "g1", batches[j:j + k]).json() == {"acked_through": (j + k) * per}
        dt = time.perf_counter() - t0
    total = sum(map(len, batches))
    with capsys.disabled():
        print(f"\ningest throughput: {n} batches in {n // k} bodies, {total / 1e6:.1f} MB in {dt:.2f}s = "
              f"{total / 1e6 / dt:.1f} MB/s (sequential, TestClient in-process, real Kafka)")
    assert len(read_topic(live.bootstrap, writes_topic(live.tenant))) == n
