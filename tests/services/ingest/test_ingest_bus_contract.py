"""One contract, two adapters: the in-memory logs behave like the Kafka ones."""

from __future__ import annotations

import secrets

import pytest

from services.ingest.bus import BusUnavailable
from services.ingest.bus.memory import MemoryBroker, MemoryControlLog, MemoryWritesLog
from shared.tenancy import writes_topic

from .ingest_helpers import batch


def _memory(request):
    broker = MemoryBroker()
    reader = lambda tenant: [(m.key, m.value, dict(m.headers)) for m in broker.topics[writes_topic(tenant)]]  # noqa: E731
    return MemoryWritesLog(broker), MemoryControlLog(broker), reader


def _kafka(request):
    from services.ingest.bus.kafka import KafkaControlLog, KafkaWritesLog
    from shared.bus.kafka import Producer

    from .kafka_helpers import read_topic

    bootstrap = request.getfixturevalue("kafka_bootstrap")
    producer = Producer(bootstrap, **{"message.timeout.ms": 5000})
    reader = lambda tenant: [(k, v, h) for k, v, h, _ in read_topic(bootstrap, writes_topic(tenant))]  # noqa: E731
    return KafkaWritesLog(bootstrap, producer, timeout=10), KafkaControlLog(bootstrap, producer, timeout=10), reader


@pytest.fixture(params=[pytest.param(_memory, id="memory"),
                        pytest.param(_kafka, id="kafka", marks=pytest.mark.integration)])
def logs(request):
    return request.param(request)


def tenant() -> str:
    return "ct-" + secrets.token_hex(4)


def test_publish_is_readable_in_order_with_headers(logs):
    writes, _control, read = logs
    t = tenant()
    writes.ensure(t)
    writes.ensure(t)  # idempotent
    b1, b2 = batch(1, 3), batch(4, 9)
    writes.publish(t, "g1", b1, 1, 3)
    writes.publish(t, "g1", b2, 4, 9)
    assert read(t) == [(b"g1", b1, {"first_seq": b"1", "last_seq": b"3"}),
                       (b"g1", b2, {"first_seq": b"4", "last_seq": b"9"})]


def test_publish_many_is_one_message_per_batch_in_order(logs):
    writes, _control, read = logs
    t = tenant()
    writes.ensure(t)
    b1, b2, b3 = batch(1, 3), batch(4, 4), batch(5, 9)
    writes.publish(t, "g1", b1, 1, 3)
    writes.publish_many(t, "g1", [(b2, 4, 4), (b3, 5, 9)])
    assert read(t) == [(b"g1", b1, {"first_seq": b"1", "last_seq": b"3"}),
                       (b"g1", b2, {"first_seq": b"4", "last_seq": b"4"}),
                       (b"g1", b3, {"first_seq": b"5", "last_seq": b"9"})]
    with pytest.raises(BusUnavailable):  # a topic never ensured: nothing acknowledged
        writes.publish_many(tenant(), "g1", [(b1, 1, 3), (b2, 4, 4)])


def test_control_replay_returns_events_in_order(logs):
    _writes, control, _read = logs
    t = tenant()
    assert control.replay(t) == []  # no topic yet: no events, no error
    control.ensure(t)
    assert control.replay(t) == []
    events = [{"type": "GroupRegistered", "group": f"g{i}", "n": i} for i in range(5)]
    for ev in events:
        control.append(t, ev["group"], ev)
    assert control.replay(t) == events


def test_publish_to_missing_topic_fails_as_unavailable(logs):
    writes, control, _read = logs
    t = tenant()
    # Topic auto-creation is off: without ensure() nothing is acknowledged.
    with pytest.raises(BusUnavailable):
        writes.publish(t, "g1", batch(1, 1), 1, 1)
    with pytest.raises(BusUnavailable):
        control.append(t, "g1", {"type": "x"})


def test_replay_of_a_long_log_rebuilds_latest_state(logs):
    _writes, control, _read = logs
    t = tenant()
    control.ensure(t)
    for i in range(1, 401):
        control.append(t, f"g{i % 4}", {"type": "BatchAcked", "group": f"g{i % 4}", "acked_through": i})
    events = control.replay(t)
    assert len(events) == 400 and events[-1]["acked_through"] == 400
    latest = {e["group"]: e["acked_through"] for e in events}
    assert latest == {"g0": 400, "g1": 397, "g2": 398, "g3": 399}
