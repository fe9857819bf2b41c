"""Produce and consume on a per-tenant topic of the real Kafka."""

from __future__ import annotations

import uuid

import pytest

from shared import tenancy
from shared.bus.kafka import Producer, consumer, ensure_topics
from shared.frames import data_record, decode_batch, encode_batch

pytestmark = pytest.mark.integration


def test_produce_and_consume_batches_on_tenant_topic(kafka_bootstrap):
    tenant = f"t{uuid.uuid4().hex[:8]}"
    topic = tenancy.writes_topic(tenant)
    ensure_topics(kafka_bootstrap, [topic], partitions=3)
    ensure_topics(kafka_bootstrap, [topic], partitions=3)  # idempotent
    producer = Producer(kafka_bootstrap)
    batches = [encode_batch([data_record("disk0", i, i, i * 4096, bytes([i]) * 4096)]) for i in range(1, 21)]
    delivered = producer.send_many_sync(topic, [(b"group-1", b, [("first_seq", str(i + 1).encode())])
                                                for i, b in enumerate(batches)])
    assert len({d.partition for d in delivered}) == 1, "one key keeps one partition (order)"
    offsets = [d.offset for d in delivered]
    assert offsets == sorted(offsets)

    c = consumer(kafka_bootstrap, f"test-{uuid.uuid4().hex[:6]}")
    c.subscribe([topic])
    got = []
    try:
        for _ in range(200):
            msg = c.poll(0.5)
            if msg is None or msg.error():
                if len(got) == len(batches):
                    break
                continue
            got.append(msg.value())
            if len(got) == len(batches):
                break
    finally:
        c.close()
    assert got == batches
    assert [decode_batch(g)[0].sequence for g in got] == list(range(1, 21))


def test_topic_auto_creation_is_off(kafka_bootstrap):
    from shared.bus.kafka import BusUnavailable

    producer = Producer(kafka_bootstrap, **{"message.timeout.ms": 3000})
    with pytest.raises(BusUnavailable):
        producer.send_sync(f"dialback.nosuch{uuid.uuid4().hex[:6]}.writes", b"x", timeout=8)
