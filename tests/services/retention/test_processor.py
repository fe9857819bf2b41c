"""Processor: acks only after durability, in offset order, and never while the store fails."""

from __future__ import annotations

import asyncio
import threading

from services.retention.journaler import Journaler, Outcome
from services.retention.processor import Processor
from shared.broken import read_mark, write_mark
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
        proc.retry_pause = 0.01
        store.fail = True
        now[0] = 5.0
        assert await proc.flush_due(wait=False) == 1  # upload started in the background
        await asyncio.sleep(0.1)                       # ... and retried while the store fails
        assert acked == [] and proc.last_flush_error
        assert last_sequence(store, "dialback-acme", "g1") == 0
        store.fail = False
        await proc.drain()
        assert acked == [0] and proc.last_flush_error is None
        assert last_sequence(store, "dialback-acme", "g1") == 10
    asyncio.run(run())


def test_bad_key_is_acked_but_a_gap_is_held_and_marks_the_group():
    async def run():
        store, now = MemoryObjectStore(), [0.0]
        events: list = []
        j = Journaler(store, max_age=1.0, clock=lambda: now[0])
        acked: list = []
        proc = Processor(j, ack=acked.append, notify=lambda t, g, ev: events.append((t, g, ev)))
        recs = random_records(10, seed=4)
        assert await proc.on_message(TOPIC, "p0", b"../x", batches_of(recs, 10)[0], 0) is Outcome.CORRUPT
        assert await proc.on_message(TOPIC, "p0", b"g1", batches_of(recs[3:], 10)[0], 1) is Outcome.GAP
        await proc.gaps.settle()
        assert acked == [0]  # the gap message is not acked: nothing past it may be committed
        assert last_sequence(store, "dialback-acme", "g1") == 0
        assert read_mark(store, "dialback-acme", "g1")["expected"] == 1
        assert [(t, g, e["type"], e["expected"]) for t, g, e in events] == [("acme", "g1", "GroupBroken", 1)]
        assert proc.gaps.status() == {"acme/g1": 1}
    asyncio.run(run())


def test_resend_releases_held_gap_messages_and_clears_the_mark():
    async def run():
        store, now = MemoryObjectStore(), [0.0]
        events: list = []
        j = Journaler(store, max_age=1.0, clock=lambda: now[0])
        acked: list = []
        proc = Processor(j, ack=acked.append, notify=lambda t, g, ev: events.append(ev["type"]))
        b = batches_of(random_records(30, seed=6), 10)
        await proc.on_message(TOPIC, "p0", b"g1", b[0], 0)
        assert await proc.on_message(TOPIC, "p0", b"g1", b[2], 1) is Outcome.GAP  # 11-20 lost
        await proc.on_message(TOPIC, "p0", b"g2", batches_of(random_records(5, seed=7), 5)[0], 2)
        now[0] = 5.0
        await proc.flush_due()
        assert acked == [0]  # g2 is durable, but its ack waits behind the held gap message
        assert last_sequence(store, "dialback-acme", "g2") == 5
        for i, m in ((3, b[1]), (4, b[2])):  # the resend from 11
            assert await proc.on_message(TOPIC, "p0", b"g1", m, i) is Outcome.BUFFERED
        now[0] = 10.0
        await proc.flush_due()
        await proc.gaps.settle()
        assert acked == [0, 1, 2, 3, 4]
        assert last_sequence(store, "dialback-acme", "g1") == 30
        assert read_mark(store, "dialback-acme", "g1") is None
        assert events == ["GroupBroken", "GroupRepaired"] and proc.gaps.status() == {}
    asyncio.run(run())


def test_a_mark_left_in_the_store_is_adopted_or_cleared_on_load():
    async def run():
        store, now = MemoryObjectStore(), [0.0]
        b = batches_of(random_records(20, seed=8), 10)
        j = Journaler(store, max_age=1.0, clock=lambda: now[0])
        proc = Processor(j, ack=lambda _: None)
        await proc.on_message(TOPIC, "p0", b"g1", b[0], 0)
        await proc.flush_all()
        write_mark(store, "dialback-acme", "g1", 5, 9)  # healed before a crash; the clear was lost
        write_mark(store, "dialback-acme", "g2", 1, 4)  # still broken
        fresh = Processor(Journaler(store, max_age=1.0, clock=lambda: now[0]), ack=lambda _: None)
        await fresh.on_message(TOPIC, "p0", b"g1", b[0], 0)
        await fresh.on_message(TOPIC, "p0", b"g2", b[1], 1)
        await fresh.gaps.settle()
        assert read_mark(store, "dialback-acme", "g1") is None
        assert fresh.gaps.status() == {"acme/g2": 1}
    asyncio.run(run())


def test_size_triggers_background_flush():
    async def run():
        store, now = MemoryObjectStore(), [0.0]
        proc, acked = _proc(store, now, max_bytes=64 << 10)
        recs = random_records(60, seed=5)
        for i, b in enumerate(batches_of(recs, 3)):
            await proc.on_message(TOPIC, "p0", b"g1", b, i)
        await proc.drain()
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


class SlowFirstSegmentStore(MemoryObjectStore):
    """The PUT of the segment starting at sequence 1 blocks until released; records timeline PUTs in order."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.first = True
        self.timeline: list[str] = []
        self.fail_timeline = False

    def put(self, bucket, key, data):
        if key.endswith(".seg") and "/00000000000000000001-" in key and self.first:
            self.first = False
            assert self.release.wait(10), "test never released the first segment"
        if "/timeline/" in key:
            if self.fail_timeline:
                raise TransientStoreError("timeline down (test)")
            self.timeline.append(key)
        super().put(bucket, key, data)


def test_pipelined_uploads_keep_timeline_and_acks_in_order():
    async def run():
        store, now = SlowFirstSegmentStore(), [0.0]
        proc, acked = _proc(store, now, max_bytes=64 << 10)
        proc.max_inflight = 3
        recs = random_records(60, seed=7)
        msgs = batches_of(recs, 3)
        i = 0
        # Reading goes on while segment 1 hangs: segments 2.. are sealed and uploaded meanwhile.
        while len(proc._inflight[("acme", "g1")]) < 3 and i < len(msgs):
            await proc.on_message(TOPIC, "p0", b"g1", msgs[i], i)
            i += 1
        assert len(proc._inflight[("acme", "g1")]) == 3, "uploads did not overlap reading"
        await asyncio.sleep(0.2)  # segments 2 and 3 are durable by now, their entries must wait
        assert store.timeline == [] and acked == []
        assert last_sequence(store, "dialback-acme", "g1") == 0
        store.release.set()
        for j in range(i, len(msgs)):
            await proc.on_message(TOPIC, "p0", b"g1", msgs[j], j)
        await proc.flush_all()
        ranges = [tuple(int(x) for x in k.rsplit("/", 1)[1][:-5].split("-")) for k in store.timeline]
        assert ranges[0][0] == 1 and ranges[-1][1] == 60
        assert all(b[0] == a[1] + 1 for a, b in zip(ranges, ranges[1:])), ranges  # written in order, gap-free
        assert acked == list(range(len(msgs)))
    asyncio.run(run())


def test_inflight_bound_holds_the_message_path():
    async def run():
        store, now = SlowFirstSegmentStore(), [0.0]
        proc, acked = _proc(store, now, max_bytes=64 << 10)
        proc.max_inflight = 2
        msgs = batches_of(random_records(60, seed=8), 3)
        fed = 0

        async def feed():
            nonlocal fed
            for i, m in enumerate(msgs):
                await proc.on_message(TOPIC, "p0", b"g1", m, i)
                fed += 1
        task = asyncio.ensure_future(feed())
        await asyncio.sleep(0.3)
        assert not task.done() and fed < len(msgs)  # held: two uploads pending, a third segment full
        assert len(proc._inflight[("acme", "g1")]) == 2 and acked == []
        store.release.set()
        await asyncio.wait_for(task, 10)
        await proc.flush_all()
        assert acked == list(range(len(msgs)))
        assert last_sequence(store, "dialback-acme", "g1") == 60
    asyncio.run(run())


def test_revoke_stops_pending_uploads_before_their_timeline_entry():
    async def run():
        store, now = SlowFirstSegmentStore(), [0.0]
        proc, acked = _proc(store, now, max_bytes=64 << 10)
        proc.max_inflight = 3
        msgs = batches_of(random_records(60, seed=9), 3)
        i = 0
        while len(proc._inflight[("acme", "g1")]) < 2:
            await proc.on_message(TOPIC, "p0", b"g1", msgs[i], i)
            i += 1
        proc.revoke({"p0"})
        store.release.set()
        await proc.settle()
        assert store.timeline == [] and acked == []  # nothing of the revoked generation became visible
        # The partition comes back: everything is read again from the (empty) timeline.
        for j, m in enumerate(msgs):
            await proc.on_message(TOPIC, "p0", b"g1", m, 100 + j)
        await proc.flush_all()
        assert last_sequence(store, "dialback-acme", "g1") == 60
        assert acked == [100 + j for j in range(len(msgs))]
    asyncio.run(run())


def test_failed_timeline_entry_blocks_later_entries_until_it_is_written():
    async def run():
        store, now = SlowFirstSegmentStore(), [0.0]
        store.first = False
        proc, acked = _proc(store, now, max_bytes=64 << 10)
        proc.retry_pause = 0.01
        store.fail_timeline = True
        msgs = batches_of(random_records(30, seed=10), 3)
        task = asyncio.ensure_future(asyncio.gather(*[proc.on_message(TOPIC, "p0", b"g1", m, i)
                                                      for i, m in enumerate(msgs)]))
        await asyncio.sleep(0.3)
        assert acked == [] and store.timeline == [] and proc.last_flush_error
        store.fail_timeline = False
        await asyncio.wait_for(task, 10)
        await proc.flush_all()
        assert acked == list(range(len(msgs))) and last_sequence(store, "dialback-acme", "g1") == 30
    asyncio.run(run())


def test_sealed_records_are_opened_and_a_plaintext_one_is_refused_not_journaled(tmp_path):
    from shared.crypto.bus import BusSeal
    from shared.crypto.keyring import Keyring
    from shared.crypto.transport import new_key

    async def run():
        store, now = MemoryObjectStore(), [0.0]
        ring = Keyring(new_key(), tmp_path / "keyring.json")
        ingest = BusSeal(ring, create=True)
        acked: list = []
        proc = Processor(Journaler(store, max_age=1.0, clock=lambda: now[0]), ack=acked.append, bus=BusSeal(ring))
        b = batches_of(random_records(30, seed=9), 10)
        value, headers = ingest.seal("acme", "g1", 1, 10, b[0])
        assert await proc.on_message(TOPIC, "p0", b"g1", value, 0, headers) is Outcome.BUFFERED
        # A plaintext record while the master key is on (another producer, or ingest run without
        # the key) is refused: nothing of it is journaled, so the next sealed record is a gap.
        plain_headers = [("first_seq", b"11"), ("last_seq", b"20")]
        assert await proc.on_message(TOPIC, "p0", b"g1", b[1], 1, plain_headers) is Outcome.CORRUPT
        value, headers = ingest.seal("acme", "g1", 21, 30, b[2])
        assert await proc.on_message(TOPIC, "p0", b"g1", value, 2, headers) is Outcome.GAP
        # A record sealed for g1 but keyed to g2 does not open either.
        value, headers = ingest.seal("acme", "g1", 11, 20, b[1])
        assert await proc.on_message(TOPIC, "p0", b"g2", value, 3, headers) is Outcome.CORRUPT
        now[0] = 5.0
        await proc.flush_all()
        await proc.gaps.settle()
        assert last_sequence(store, "dialback-acme", "g1") == 10
        assert last_sequence(store, "dialback-acme", "g2") == 0
        assert 2 not in acked  # the gap message is held
    asyncio.run(run())
