"""Replay a topic from its beginning, or tail it: how a process rebuilds a compacted view (licences, billing)."""

from __future__ import annotations

import time
import uuid
from typing import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from shared.bus.kafka import BusUnavailable, client_config


def _assigned_from_start(bootstrap: str, topic: str, eof: bool) -> tuple[Consumer, list[TopicPartition]]:
    c = Consumer({
        **client_config(bootstrap),
        # never commits: a throwaway group id keeps it out of everyone's way
        "group.id": f"dialback-replay-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "enable.partition.eof": eof,
    })
    md = c.list_topics(topic, timeout=10)
    meta = md.topics.get(topic)
    if meta is None or meta.error is not None:
        c.close()
        raise BusUnavailable(f"topic {topic} is not there; start metering once (it creates its topics) "
                             "or run `dialback serve-metering`")
    tps = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(meta.partitions)]
    c.assign(tps)
    return c, tps


def replay(bootstrap: str, topic: str, apply: Callable[[bytes | None, bytes | None], None],
           timeout: float = 120.0) -> int:
    """Feed every committed record of ``topic`` to ``apply(key, value)``, in order, up to its end."""
    c, tps = _assigned_from_start(bootstrap, topic, eof=True)
    pending = {tp.partition for tp in tps}
    n = 0
    deadline = time.monotonic() + timeout
    try:
        while pending:
            if time.monotonic() > deadline:
                raise BusUnavailable(f"could not read {topic} to its end within {timeout:.0f}s")
            for m in c.consume(10000, timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(m.partition())
                        continue
                    raise BusUnavailable(f"reading {topic}: {err}")
                apply(m.key(), m.value())
                n += 1
    finally:
        c.close()
    return n


class Tail:
    """Follows a topic from its beginning; ``poll`` hands new records to a callback without blocking."""

    def __init__(self, bootstrap: str, topic: str, apply: Callable[[bytes | None, bytes | None], None]) -> None:
        self._c, _ = _assigned_from_start(bootstrap, topic, eof=False)
        self._apply = apply
        self.topic = topic

    def poll(self, timeout: float = 0.0, max_records: int = 10000) -> int:
        n = 0
        for m in self._c.consume(max_records, timeout=timeout):
            if m.error() is None:
                self._apply(m.key(), m.value())
                n += 1
        return n

    def close(self) -> None:
        self._c.close()
