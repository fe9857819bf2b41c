"""Processor: acks only after durability, in offset order, and never while the store fails."""

from __future__ import annotations

import asyncio

from services.retention.journaler import Journaler, Outcome
from services.retention.processor import Processor
from shared.journal import last_sequence
from shared.objectstore import TransientStoreError
from shared.objectstore.memory import MemoryObjectStore
from tests.services.retention.helpers import batches_of, random_records

TOPIC = "dialback.acme.writes"


class FlakyStore(MemoryObjectStore):
    def __init__(self) -> None:
        super().__init__()
        self.fail = False

    def put(self, bucket, key, data):
        if self.fail:
            raise TransientStoreError("store down (test)")
        super().put(bucket, key, data)


def _proc(store, now, **kw):
    acked: list = []
    j = Journaler(store, max_age=1.0, clock=lambda: now[0], **kw)
    return Processor(j, ack=acked.append), acked


def test_acks_follow_durability_in_offset_order():
    async def run():
        store, now = MemoryObjectStore(), [0.0]
        proc, acked = _proc(store, now)
        g1 = batches_of(random_records(20, seed=1), 5)
        g2 = batches_of(random_records(20, seed=2), 5)
        offset = 0
        # offsets 0..7 alternate g1 / g2 on one partition
        for a, b in zip(g1, g2):
            assert await proc.on_message(TOPIC, "p0", b"g1", a, offset) is Outcome.BUFFERED
            assert await proc.on_message(TOPIC, "p0", b"g2", b, offset + 1) is Outcome.BUFFERED
            offset += 2
        assert acked == [] and proc.acks.pending() == 8
        # Only g2 durable: nothing may be acked, g1's message at offset 0 is still in memory.
        await proc._flush_locked(("acme", "g2"))
        assert last_sequence(store, "dialback-acme", "g2") == 20
        assert acked == []
        now[0] = 2.0
        assert await proc.flush_due() == 1
        assert acked == list(range(8))
        # A redelivered message is a duplicate: acked at once, nothing written.
        assert await proc.on_message(TOPIC, "p0", b"g1", g1[0], 8) is Outcome.DUPLICATE
        assert acked[-1] == 8
    asyncio.run(run())


def test_store_failure_keeps_buffer_unacked_then_retries():
    async def run():
        store, now = FlakyStore(), [0.0]
        proc, acked = _proc(store, now)
        recs = random_records(10, seed=3)
        await proc.on_message(TOPIC, "p0", b"g1", batches_of(recs, 10)[0], 0)
        store.fail = True
        now[0] = 5.0
        assert await proc.flush_due() == 0
        assert acked == [] and proc.last_flush_error
        store.fail = False
        assert await proc.flush_due() == 1
        assert acked == [0] and proc.last_flush_error is None
        assert last_sequence(store, "dialback-acme", "g1") == 10
    asyncio.run(run())


def test_bad_key_and_gap_are_acked_without_writing():
    async def run():
        store, now = MemoryObjectStore(), [0.0]
        proc, acked = _proc(store, now)
        recs = random_records(10, seed=4)
        assert await proc.on_message(TOPIC, "p0", b"../x", batches_of(recs, 10)[0], 0) is Outcome.CORRUPT
        assert await proc.on_message(TOPIC, "p0", b"g1", batches_of(recs[3:], 10)[0], 1) is Outcome.GAP
        assert acked == [0, 1]
        assert last_sequence(store, "dialback-acme", "g1") == 0
    asyncio.run(run())


def test_size_triggers_flush_inline():
    async def run():
        store, now = MemoryObjectStore(), [0.0]
        proc, acked = _proc(store, now, max_bytes=64 << 10)
        recs = random_records(60, seed=5)
        for i, b in enumerate(batches_of(recs, 3)):
            await proc.on_message(TOPIC, "p0", b"g1", b, i)
        assert last_sequence(store, "dialback-acme", "g1") > 0
        assert acked and acked == list(range(len(acked)))
    asyncio.run(run())


def test_revoke_forgets_without_acking():
    async def run():
        store, now = MemoryObjectStore(), [0.0]
        proc, acked = _proc(store, now)
        recs = random_records(10, seed=6)
        await proc.on_message(TOPIC, "p0", b"g1", batches_of(recs, 10)[0], 0)
        proc.revoke({"p0"})
        now[0] = 5.0
        assert await proc.flush_due() == 0
        assert acked == [] and last_sequence(store, "dialback-acme", "g1") == 0
    asyncio.run(run())
