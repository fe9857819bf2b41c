"""In-memory logs with the same contract as the Kafka adapters (for unit tests).

Like the broker (topic auto-creation off), publishing to a topic that was
never ensured fails; ``down()`` makes every call fail as an unreachable
broker would, until ``up()``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

from services.ingest.bus.base import BusUnavailable, ControlLog, WritesLog, control_key
from shared.tenancy import control_topic, writes_topic


@dataclass(frozen=True)
class Message:
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


class MemoryBroker:
    """Topics as lists of messages; shared by the memory adapters."""

    def __init__(self) -> None:
        self.topics: dict[str, list[Message]] = {}
        self.available = True
        self._lock = threading.Lock()

    def down(self) -> None:
        self.available = False

    def up(self) -> None:
        self.available = True

    def _check(self) -> None:
        if not self.available:
            raise BusUnavailable("memory broker is down (test)")

    def create(self, topic: str) -> None:
        with self._lock:
            self._check()
            self.topics.setdefault(topic, [])

    def append(self, topic: str, msg: Message) -> None:
        with self._lock:
            self._check()
            if topic not in self.topics:
                raise BusUnavailable(f"topic {topic} does not exist (auto-creation is off)")
            self.topics[topic].append(msg)

    def read(self, topic: str) -> list[Message]:
        with self._lock:
            self._check()
            return list(self.topics.get(topic, []))


class MemoryWritesLog(WritesLog):
    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker

    def ensure(self, tenant: str) -> None:
        self.broker.create(writes_topic(tenant))

    def publish(self, tenant: str, group: str, batch: bytes, first_seq: int, last_seq: int) -> None:
        value, headers = self.record(tenant, group, bytes(batch), first_seq, last_seq)
        self.broker.append(writes_topic(tenant), Message(group.encode(), value, tuple(headers)))

    def messages(self, tenant: str) -> list[Message]:
        return self.broker.topics.get(writes_topic(tenant), [])


class MemoryControlLog(ControlLog):
    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker
        self._followed: dict[str, int] = {}

    def ensure(self, tenant: str) -> None:
        self.broker.create(control_topic(tenant))

    def append(self, tenant: str, group: str, event: dict) -> None:
        value = json.dumps(event, separators=(",", ":")).encode()
        self.broker.append(control_topic(tenant), Message(control_key(group), value, ()))

    def replay(self, tenant: str) -> list[dict]:
        events = [json.loads(m.value) for m in self.broker.read(control_topic(tenant))]
        self._followed[tenant] = len(events)
        return events

    def follow(self, tenant: str) -> list[dict]:
        msgs = self.broker.read(control_topic(tenant))
        start = self._followed.get(tenant, len(msgs))
        self._followed[tenant] = len(msgs)
        return [json.loads(m.value) for m in msgs[start:]]
