"""Reading a topic back from a real Kafka, for ingest's integration tests."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from shared.bus.kafka import consumer


def read_topic(bootstrap: str, topic: str, timeout: float = 30.0) -> list[tuple[bytes, bytes, dict, int]]:
    """Every message up to the current end: (key, value, headers, partition), per-partition order."""
    c = consumer(bootstrap, f"test-read-{uuid.uuid4().hex}")
    try:
        md = c.list_topics(topic, timeout=timeout).topics[topic]
        ends = {}
        for p in md.partitions:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            if hi > lo:
                ends[p] = hi
        out = []
        if not ends:
            return out
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        deadline = time.monotonic() + timeout
        while ends and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None or msg.error():
                continue
            out.append((msg.key(), msg.value(), dict(msg.headers() or []), msg.partition()))
            if msg.offset() + 1 >= ends.get(msg.partition(), 0):
                ends.pop(msg.partition(), None)
        assert not ends, f"could not read {topic} to its end within {timeout}s"
        return out
    finally:
        c.close()


def partitions(bootstrap: str, topic: str) -> int:
    c = consumer(bootstrap, f"test-md-{uuid.uuid4().hex}")
    try:
        return len(c.list_topics(topic, timeout=20).topics[topic].partitions)
    finally:
        c.close()
