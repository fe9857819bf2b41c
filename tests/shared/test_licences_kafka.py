"""The shared licence reader on real Kafka: what metering publishes is what ingest, recovery and burst enforce."""

from __future__ import annotations

import time
import uuid

import pytest

from services.metering.config import MeteringSettings
from shared.licences import LicenceBook
from services.metering.service import LicenceSwitcher
from shared.bus.kafka import ensure_topics
from shared.licences import LicenceWatch
from shared.usage import Feature

pytestmark = pytest.mark.integration


def until(pred, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_switch_published_by_metering_reaches_every_watch(kafka_bootstrap):
    topic = f"dialback.licensing.{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, [topic], config={"cleanup.policy": "compact"})
    early = LicenceWatch(kafka_bootstrap, topic, poll_s=0.1).start()
    try:
        until(early.caught_up.is_set, what="the watch read the topic")
        assert early.enabled("acme", Feature.PROTECTION, "g1")
        switch = LicenceSwitcher(MeteringSettings(kafka_bootstrap=kafka_bootstrap, licensing_topic=topic),
                                 LicenceBook())
        switch("acme", Feature.PROTECTION, "g1", False)
        switch("acme", Feature.BURST, None, False)
        until(lambda: not early.enabled("acme", Feature.PROTECTION, "g1"), what="the switch-off seen")
        assert early.enabled("acme", Feature.PROTECTION, "g2") and early.enabled("globex", Feature.PROTECTION, "g1")
        # the tenant's switch covers every group
        until(lambda: not early.enabled("acme", Feature.BURST, "any-group"), what="the burst switch-off seen")
        # a service started later replays the compacted topic and enforces at once
        late = LicenceWatch(kafka_bootstrap, topic).start()
        try:
            until(late.caught_up.is_set, what="the late watch read the topic")
            assert not late.enabled("acme", Feature.PROTECTION, "g1")
        finally:
            late.close()
        switch("acme", Feature.PROTECTION, "g1", True)
        until(lambda: early.enabled("acme", Feature.PROTECTION, "g1"), what="the switch-on seen")
    finally:
        early.close()


def test_an_unreadable_topic_fails_open(caplog):
    watch = LicenceWatch("127.0.0.1:1", "dialback.licensing").start()
    try:
        assert watch.enabled("acme", Feature.PROTECTION, "g1")  # protection is never stopped by an outage
        assert not watch.caught_up.is_set()
    finally:
        watch.close()
