"""RenewingProducer: a producer that failed is replaced, once, for the next send."""

from __future__ import annotations

import pytest

from services.ingest.bus.kafka import RenewingProducer
from shared.bus.kafka import BusUnavailable, Delivered


class ScriptedProducer:
    """Same send_sync/flush surface as shared.bus.kafka.Producer; fails the first `fail` sends."""

    made: list["ScriptedProducer"] = []

    def __init__(self, fail: int) -> None:
        self.fail, self.sent = fail, []
        ScriptedProducer.made.append(self)

    def send_sync(self, topic, value, key=None, headers=None, timeout=20.0):
        if self.fail:
            self.fail -= 1
            raise BusUnavailable("broker gone (scripted)")
        self.sent.append((topic, key, value))
        return Delivered(topic, 0, len(self.sent) - 1)

    def flush(self, timeout=10.0):
        return 0


def test_failed_producer_is_replaced_and_next_send_uses_the_new_one():
    ScriptedProducer.made.clear()
    plan = iter([1, 0])
    rp = RenewingProducer(lambda: ScriptedProducer(next(plan)))
    with pytest.raises(BusUnavailable):
        rp.send_sync("t", b"v1", key=b"k")
    assert rp.renewals == 1 and len(ScriptedProducer.made) == 2
    assert rp.send_sync("t", b"v2", key=b"k") == Delivered("t", 0, 0)
    assert ScriptedProducer.made[1].sent == [("t", b"k", b"v2")]
    assert ScriptedProducer.made[0].sent == []


def test_writes_and_control_get_their_own_producer_and_linger(monkeypatch):
    """A body's many large writes linger for fuller requests; its one control event does not wait for that."""
    import shared.bus.kafka as bus
    from services.ingest.app import kafka_logs
    from services.ingest.config import IngestSettings

    made: list[dict] = []

    class Recording:
        def __init__(self, bootstrap: str, **extra) -> None:
            made.append(extra)

    monkeypatch.setattr(bus, "Producer", Recording)
    writes, control = kafka_logs(IngestSettings(kafka_bootstrap="127.0.0.1:1", ingest_writes_linger_ms=12,
                                                ingest_control_linger_ms=0, produce_timeout_s=3))
    assert writes.producer is not control.producer
    assert sorted(m["linger.ms"] for m in made) == [0, 12]
    assert all(m["message.timeout.ms"] == 3000 for m in made)
