"""Kafka adapters for the writes and control logs (confluent-kafka).

One idempotent ``acks=all`` producer (shared.bus.kafka.Producer) serves both
logs. Topic auto-creation is off on the broker, so ``ensure`` creates topics
explicitly: writes with several partitions (key = group keeps a group's
order), control as one compacted partition (replay order = append order).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import Callable

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

from services.ingest.bus.base import BusUnavailable, ControlLog, WritesLog, control_key
from shared.bus.kafka import BusError, Producer, consumer, ensure_topics
from shared.frames import MAX_BATCH_BYTES
from shared.tenancy import control_topic, writes_topic

log = logging.getLogger(__name__)

WRITES_MAX_MESSAGE_BYTES = 2 * MAX_BATCH_BYTES
# One BatchAcked per batch piles up fast; the log cleaner never touches the
# active segment, so roll segments hourly and clean eagerly to keep replay short.
CONTROL_TOPIC_CONFIG = {"cleanup.policy": "compact", "segment.ms": "3600000", "min.cleanable.dirty.ratio": "0.1"}


def _ensure(bootstrap: str, topic: str, **kw) -> None:
    try:
        ensure_topics(bootstrap, [topic], **kw)
    except BusUnavailable:
        raise
    except (BusError, KafkaException) as err:
        # A broker that cannot create topics is, for the agent, a broker that
        # is not available: it should retry, not give up.
        raise BusUnavailable(f"cannot create {topic}: {err}") from err


class RenewingProducer:
    """A shared.bus.kafka.Producer that is replaced after a failed send.

    An idempotent producer can enter a fatal state (e.g. the broker lost its
    producer id) in which every later send fails; a fresh producer does not
    inherit it. Replacing is safe: a failed ``send_sync`` has waited past
    ``message.timeout.ms``, so the old producer holds nothing of ours, and a
    group's sends are serialized by the service, so no order is lost.
    """

    def __init__(self, factory: Callable[[], Producer]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._p = factory()
        self.renewals = 0

    def send_sync(self, topic: str, value: bytes, key: bytes | None = None, headers: list | None = None,
                  timeout: float = 20.0):
        return self._renewing(lambda p: p.send_sync(topic, value, key=key, headers=headers, timeout=timeout))

    def send_many_sync(self, topic: str, messages: list, timeout: float = 20.0):
        return self._renewing(lambda p: p.send_many_sync(topic, messages, timeout=timeout))

    def _renewing(self, send):
        p = self._p
        try:
            return send(p)
        except BusUnavailable:
            with self._lock:
                if self._p is p:  # another thread may have renewed it already
                    self._p = self._factory()
                    self.renewals += 1
            raise

    def flush(self, timeout: float = 10.0) -> int:
        return self._p.flush(timeout)


class KafkaWritesLog(WritesLog):
    def __init__(self, bootstrap: str, producer: Producer | RenewingProducer, partitions: int = 3,
                 replication: int = 1, timeout: float = 20.0) -> None:
        self.bootstrap, self.producer = bootstrap, producer
        self.partitions, self.replication, self.timeout = partitions, replication, timeout
        self._ensured: set[str] = set()

    def ensure(self, tenant: str) -> None:
        topic = writes_topic(tenant)
        if topic not in self._ensured:
            # A 1 MiB batch plus key and headers is just over Kafka's default
            # max.message.bytes (1000012): set the limit on the topic, not on faith in the broker.
            _ensure(self.bootstrap, topic, partitions=self.partitions, replication=self.replication,
                    config={"max.message.bytes": str(WRITES_MAX_MESSAGE_BYTES)}, timeout=self.timeout)
            self._ensured.add(topic)

    def close(self) -> None:
        self.producer.flush(5)

    def publish(self, tenant: str, group: str, batch: bytes, first_seq: int, last_seq: int) -> None:
        value, headers = self.record(tenant, group, batch, first_seq, last_seq)
        self.producer.send_sync(writes_topic(tenant), value, key=group.encode(), headers=headers,
                                timeout=self.timeout)

    def publish_many(self, tenant: str, group: str, batches: list[tuple[bytes, int, int]]) -> None:
        key = group.encode()
        self.producer.send_many_sync(writes_topic(tenant), [
            (key, *self.record(tenant, group, batch, first, last)) for batch, first, last in batches],
            timeout=self.timeout)


class KafkaControlLog(ControlLog):
    def __init__(self, bootstrap: str, producer: Producer | RenewingProducer, replication: int = 1,
                 timeout: float = 20.0) -> None:
        self.bootstrap, self.producer = bootstrap, producer
        self.replication, self.timeout = replication, timeout
        self._ensured: set[str] = set()
        self._replayed: dict[str, dict[int, int]] = {}  # topic -> partition -> offset the replay ended at
        self._followers: dict[str, object] = {}

    def ensure(self, tenant: str) -> None:
        topic = control_topic(tenant)
        if topic not in self._ensured:
            _ensure(self.bootstrap, topic, partitions=1, replication=self.replication,
                    config=CONTROL_TOPIC_CONFIG, timeout=self.timeout)
            self._ensured.add(topic)

    def append(self, tenant: str, group: str, event: dict) -> None:
        value = json.dumps(event, separators=(",", ":")).encode()
        self.producer.send_sync(control_topic(tenant), value, key=control_key(group), timeout=self.timeout)

    def replay(self, tenant: str) -> list[dict]:
        topic = control_topic(tenant)
        # A throwaway group id: replay never commits and must not share
        # offsets with anyone.
        c = consumer(self.bootstrap, f"dialback-ingest-replay-{uuid.uuid4().hex}", **{"enable.partition.eof": True})
        try:
            return self._replay(c, topic)
        except KafkaException as err:
            raise BusUnavailable(f"cannot replay {topic}: {err}") from err
        finally:
            c.close()

    def follow(self, tenant: str) -> list[dict]:
        """Events appended since the replay (one long-lived consumer per tenant, never committing)."""
        topic = control_topic(tenant)
        try:
            c = self._followers.get(topic)
            if c is None:
                c = consumer(self.bootstrap, f"dialback-ingest-follow-{uuid.uuid4().hex}")
                start = self._replayed.get(topic, {0: OFFSET_BEGINNING})
                c.assign([TopicPartition(topic, p, off) for p, off in start.items()])
                self._followers[topic] = c
            events: list[dict] = []
            while True:
                msg = c.poll(0.05)
                if msg is None:
                    return events
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        return events
                    raise BusUnavailable(f"cannot follow {topic}: {msg.error()}")
                try:
                    events.append(json.loads(msg.value()))
                except ValueError:
                    log.error("%s offset %d: not JSON, ignored", topic, msg.offset())
        except KafkaException as err:
            raise BusUnavailable(f"cannot follow {topic}: {err}") from err

    def close(self) -> None:
        for c in self._followers.values():
            c.close()
        self._followers.clear()

    def _replay(self, c, topic: str) -> list[dict]:
        md = c.list_topics(topic, timeout=self.timeout)
        tmd = md.topics.get(topic)
        if tmd is None or tmd.error is not None:
            if tmd is not None and tmd.error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise BusUnavailable(f"cannot read {topic}: {tmd.error}")
            return []
        ends: dict[int, int] = {}
        highs: dict[int, int] = {}
        for p in tmd.partitions:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=self.timeout)
            highs[p] = hi
            if hi > lo:
                ends[p] = hi
        self._replayed[topic] = highs  # follow() continues exactly where this replay ends
        if not ends:
            return []
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        events: list[dict] = []
        deadline = time.monotonic() + self.timeout
        while ends:
            if time.monotonic() > deadline:
                raise BusUnavailable(f"replay of {topic} made no progress for {self.timeout:.0f}s")
            msg = c.poll(0.5)
            if msg is None:
                continue
            # A long log may take long to read: give up only when it stops moving.
            deadline = time.monotonic() + self.timeout
            p = msg.partition()
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    # Compaction can remove the last offsets; EOF means we saw all there is.
                    ends.pop(p, None)
                    continue
                raise BusUnavailable(f"cannot read {topic}: {msg.error()}")
            if p in ends and msg.offset() < ends[p]:
                try:
                    events.append(json.loads(msg.value()))
                except ValueError:
                    log.error("%s offset %d: not JSON, ignored", topic, msg.offset())
                if msg.offset() + 1 >= ends[p]:
                    ends.pop(p)
        return events
