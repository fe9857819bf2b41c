"""Two bodies of a group in flight: the later one may win the lock; it waits for the earlier one."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.ingest.bus.memory import MemoryBroker, MemoryControlLog, MemoryWritesLog
from services.ingest.errors import SequenceGap
from services.ingest.service import IngestService
from shared.frames import decode_batch

from .ingest_helpers import VOLUME_SIZE, batch


async def _service(wait: float) -> tuple[IngestService, MemoryWritesLog]:
    broker = MemoryBroker()
    writes = MemoryWritesLog(broker)
    svc = IngestService(writes, MemoryControlLog(broker), reorder_wait_s=wait)
    await svc.register_group("acme", "g1", [{"volume": "disk0", "size": VOLUME_SIZE}])
    return svc, writes


def _produced(writes: MemoryWritesLog) -> list[int]:
    return [r.sequence for m in writes.messages("acme") for r in decode_batch(m.value)]


def test_body_ahead_of_its_predecessor_waits_for_it():
    async def run():
        svc, writes = await _service(5.0)
        with svc.arriving("acme", "g1"), svc.arriving("acme", "g1"):  # both bodies on the wire
            later = asyncio.ensure_future(svc.accept_batch("acme", "g1", batch(4, 6)))
            await asyncio.sleep(0.1)
            assert not later.done()  # not refused: the body before it is still arriving
            assert (await svc.accept_batch("acme", "g1", batch(1, 3)))[0] == 3
            assert (await later)[0] == 6
        assert _produced(writes) == [1, 2, 3, 4, 5, 6]  # in order, once each

    asyncio.run(run())


def test_gap_with_nothing_else_arriving_is_refused_at_once():
    async def run():
        svc, writes = await _service(5.0)
        t0 = time.monotonic()
        with svc.arriving("acme", "g1"), pytest.raises(SequenceGap) as err:
            await svc.accept_batch("acme", "g1", batch(4, 6))
        assert err.value.expected == 1 and time.monotonic() - t0 < 1.0
        assert _produced(writes) == []

    asyncio.run(run())


def test_gap_is_refused_when_the_other_body_fails_or_the_wait_ends():
    async def run():
        svc, writes = await _service(0.3)
        with svc.arriving("acme", "g1"):
            with svc.arriving("acme", "g1"), pytest.raises(SequenceGap):  # the other never fills the gap
                await svc.accept_batch("acme", "g1", batch(4, 6))
            waiting = asyncio.ensure_future(svc.accept_batch("acme", "g1", batch(7, 9)))
            await asyncio.sleep(0)
        # the other body left (failed): the waiting one is refused without waiting out the timeout
        with pytest.raises(SequenceGap):
            await waiting
        assert _produced(writes) == []

    asyncio.run(run())
