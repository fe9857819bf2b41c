"""The runner in-process on real Kafka with an injected clock: the wall clock closes idle hours,
far-future events are refused, and a restart resumes from the committed state."""

from __future__ import annotations

import json
import uuid

import pytest

from services.metering.config import MeteringSettings
from shared.bus.tail import replay
from services.metering.lines import BillingLine
from services.metering.runner import MeteringRunner
from shared.usage import Meter, UsageEmitter, new_event, subject

from tests.services.metering.helpers import at

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


def settings(bootstrap, sfx):
    return MeteringSettings(
        kafka_bootstrap=bootstrap, usage_topic=f"u.{sfx}", billing_topic=f"b.{sfx}", dlq_topic=f"d.{sfx}",
        metering_state_topic=f"s.{sfx}", licensing_topic=f"l.{sfx}", metering_group=f"g-{sfx}",
        metering_transactional_id=f"t-{sfx}", metering_wall_clock=True, metering_lateness_s=60,
        metering_max_future_s=600, metering_poll_s=0.2, metering_purge=False)


def steps_until(runner, done, n=100):
    for _ in range(n):
        runner.step()
        if done():
            break
    runner.settle()


def test_wall_clock_closes_idle_hours_and_refuses_the_future(kafka_bootstrap):
    s = settings(kafka_bootstrap, uuid.uuid4().hex[:8])
    clock = Clock(at(0, 20).timestamp())
    runner = MeteringRunner(s, clock)
    runner.start()
    em = UsageEmitter(kafka_bootstrap, "/t", s.usage_topic)
    subj = subject("acme", "groups", "g1")
    em.emit("acme", subj, Meter.INGEST_BYTES, 500, time=at(0, 10))
    em.emit("acme", subj, Meter.INGEST_BYTES, 7, time=at(3))  # 2h40 ahead of the clock: refused
    em.flush()
    steps_until(runner, lambda: runner.aggregator.buckets and runner.batches >= 1)
    runner.close()

    lines = lambda: [BillingLine.from_json(v) for v in collect(kafka_bootstrap, s.billing_topic)]  # noqa: E731
    assert lines() == []  # hour 0 still open at 00:20
    clock.t = at(1, 1, 1).timestamp()  # 01:01:01: the hour ended more than the 60 s lateness ago
    runner = MeteringRunner(s, clock)  # a restart in between: state comes back from the changelog
    runner.start()
    steps_until(runner, lambda: runner.batches >= 1)
    runner.close()
    got = [(ln.type, ln.quantity, ln.hour) for ln in lines()]
    assert got == [("usage", 500, int(at(0).timestamp() // 3600))]
    dlq = [json.loads(v) for v in collect(kafka_bootstrap, s.dlq_topic)]
    assert [d["reason"] for d in dlq] == ["time in future"]


def collect(bootstrap, topic):
    out = []
    replay(bootstrap, topic, lambda k, v: out.append(v))
    return out
