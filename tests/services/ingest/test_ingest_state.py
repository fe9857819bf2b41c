"""State survives restarts: it is a fold over the control log, even a compacted one."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx

from services.ingest.bus.memory import Message, MemoryWritesLog
from services.ingest.state import TenantState
from shared.tenancy import control_topic, writes_topic

from .ingest_helpers import BATCH, VOLUME_SIZE, batch, post, register


def test_restart_keeps_registry_and_acked_through(harness, tenants):
    with harness.client() as c:
        register(c, tenants, "acme", "g1", volumes=(("disk0", VOLUME_SIZE), ("disk1", 4096)))
        register(c, tenants, "acme", "g2", volumes=(("disk2", VOLUME_SIZE),))
        post(c, tenants, "acme", "g1", batch(1, 7))
        post(c, tenants, "acme", "g1", batch(8, 9))
        before = c.get("/v1/groups/g1", headers=tenants.headers("acme")).json()
    with harness.client() as c:  # a new app instance on the same logs
        assert c.get("/v1/groups/g1", headers=tenants.headers("acme")).json() == before
        assert before["acked_through"] == 9
        assert c.get("/v1/groups/g2", headers=tenants.headers("acme")).json()["acked_through"] == 0
        # Same answers as before the restart: duplicate acked, gap refused, volume conflict kept.
        assert post(c, tenants, "acme", "g1", batch(5, 9)).json() == {"acked_through": 9}
        assert post(c, tenants, "acme", "g1", batch(11, 12)).json()["expected"] == 10
        r = c.put("/v1/groups/g3", headers=tenants.headers("acme"), json={"volumes": [{"volume": "disk1", "size": 1}]})
        assert r.status_code == 409
        assert post(c, tenants, "acme", "g1", batch(10, 12)).json() == {"acked_through": 12}
    assert len(harness.broker.topics[writes_topic("acme")]) == 3


def test_replay_after_compaction_keeps_every_group(harness, tenants):
    with harness.client() as c:
        register(c, tenants, "acme", "g1")
        post(c, tenants, "acme", "g1", batch(1, 4))
        post(c, tenants, "acme", "g1", batch(5, 6))
    log = harness.broker.topics[control_topic("acme")]
    latest: dict[bytes, Message] = {}
    for m in log:
        latest[m.key] = m  # what Kafka's log cleaner keeps: the last value per key
    log[:] = list(latest.values())
    assert len(log) == 1 and json.loads(log[0].value)["type"] == "BatchAcked"
    with harness.client() as c:
        got = c.get("/v1/groups/g1", headers=tenants.headers("acme")).json()
        assert got == {"group": "g1", "volumes": [{"volume": "disk0", "size": VOLUME_SIZE}], "acked_through": 6}


def test_damaged_events_are_skipped():
    st = TenantState.replay([
        {"type": "GroupRegistered", "group": "g1", "volumes": [{"volume": "d0", "size": 10}], "time": "t"},
        {"type": "BatchAcked", "group": "g1", "acked_through": "x"},
        {"type": "BatchAcked", "group": "ghost", "acked_through": 3},
        {"nonsense": True},
        {"type": "BatchAcked", "group": "g1", "acked_through": 4, "time": "t"},
        {"type": "BatchAcked", "group": "g1", "acked_through": 2, "time": "t"},  # never goes back
    ])
    assert set(st.groups) == {"g1"}
    assert st.groups["g1"].acked_through == 4
    assert st.volume_owner == {"d0": "g1"}


class SlowWritesLog(MemoryWritesLog):
    """Same contract; takes a while to acknowledge, as Kafka does, so requests overlap."""

    def __init__(self, broker, delay: float) -> None:
        super().__init__(broker)
        self.delay = delay
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def publish(self, *a, **kw):
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.delay)
            super().publish(*a, **kw)
        finally:
            with self._lock:
                self.in_flight -= 1


def test_concurrent_posts_to_one_group_are_serialized(harness, tenants):
    slow = SlowWritesLog(harness.broker, 0.2)
    harness.writes = slow
    app = harness.app(preload=False)

    async def run():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as c:
            h = tenants.headers("acme")
            r = await c.put("/v1/groups/g1", headers=h, json={"volumes": [{"volume": "disk0", "size": VOLUME_SIZE}]})
            assert r.status_code == 200
            await c.put("/v1/groups/g2", headers=h, json={"volumes": [{"volume": "disk1", "size": VOLUME_SIZE}]})
            hb = {**h, "Content-Type": BATCH}
            same = [c.post("/v1/groups/g1/batches", content=batch(1, 5), headers=hb) for _ in range(4)]
            other = [c.post("/v1/groups/g2/batches", content=batch(1, 5, volume="disk1"), headers=hb)]
            return await asyncio.gather(*same, *other)

    t0 = time.monotonic()
    answers = asyncio.run(run())
    elapsed = time.monotonic() - t0
    assert [r.status_code for r in answers] == [200] * 5
    assert all(r.json() == {"acked_through": 5} for r in answers)
    msgs = harness.broker.topics[writes_topic("acme")]
    # Four identical posts to g1 produced once; g2 is not blocked behind g1.
    assert sorted(m.key for m in msgs) == [b"g1", b"g2"]
    assert slow.max_in_flight == 2
    assert elapsed < 4 * 0.2 + 0.5


def test_cancelled_request_still_finishes_its_batch(harness, tenants):
    """A client gone mid-produce: the batch is still acknowledged to the control log, and
    the group stays locked until then, so the resend is recognised as a duplicate."""
    slow = SlowWritesLog(harness.broker, 0.3)
    harness.writes = slow
    app = harness.app(preload=False)
    service = app.state.service

    async def run():
        await service.register_group("acme", "g1", [{"volume": "disk0", "size": VOLUME_SIZE}])
        first = asyncio.ensure_future(service.accept_batch("acme", "g1", batch(1, 5)))
        await asyncio.sleep(0.1)  # inside the produce
        first.cancel()
        resend = await service.accept_batch("acme", "g1", batch(1, 5))
        return first, resend

    first, (acked, plan) = asyncio.run(run())
    assert first.cancelled()
    assert acked == 5 and plan.duplicate  # the resend waited for the first and was a duplicate
    assert len(harness.broker.topics[writes_topic("acme")]) == 1
    acks = [json.loads(m.value) for m in harness.broker.topics[control_topic("acme")]]
    assert [e["acked_through"] for e in acks if e["type"] == "BatchAcked"] == [5]
