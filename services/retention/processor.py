"""The async side of retention: events in, durable segments out, acks after.

Blocking object-store I/O runs in threads so the event loop keeps Kafka
heartbeats going. A lock per group serialises that group's offers and
flushes; different groups flush concurrently.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any, Callable, Hashable

from services.retention import metrics
from services.retention.acks import OrderedAcks
from services.retention.journaler import GroupId, Journaler, Outcome
from shared.objectstore import ObjectStoreError
from shared.tenancy import check_volume, tenant_of_topic

log = logging.getLogger(__name__)


class Processor:
    def __init__(self, journaler: Journaler, ack: Callable[[Any], Any], max_buffer_factor: int = 4) -> None:
        self.j = journaler
        self.acks = OrderedAcks(ack)
        self._locks: dict[GroupId, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._tp_of: dict[GroupId, Hashable] = {}
        self.max_buffer_factor = max_buffer_factor
        self.last_flush_error: str | None = None

    async def on_message(self, topic: str, tp: Hashable, key: bytes | None, value: bytes, item: Any) -> Outcome:
        """Handle one writes-topic message; ``item`` is what gets acked once durable."""
        handle = self.acks.track(tp, item)
        tenant = tenant_of_topic(topic)
        try:
            group = check_volume((key or b"").decode("utf-8", "replace"))
        except ValueError:
            group = None
        if tenant is None or group is None:
            log.error("message on %s with key %r is not a tenant's group write; skipped", topic, key)
            metrics.REFUSED.labels("bad_key").inc()
            self.acks.done([handle])
            return Outcome.CORRUPT
        gid = (tenant, group)
        self._tp_of[gid] = tp
        async with self._locks[gid]:
            if self.j.needs_load(tenant, group):
                await self._retry(lambda: self.j.next_expected(tenant, group), f"read timeline of {tenant}/{group}")
            outcome = self.j.offer(tenant, group, value, handle)
            if outcome is not Outcome.BUFFERED:
                if outcome is Outcome.DUPLICATE:
                    metrics.DUPLICATES.inc()
                else:
                    metrics.REFUSED.labels(outcome.value).inc()
                self.acks.done([handle])
            elif self.j.full(tenant, group):
                await self._flush_locked(gid)
        return outcome

    async def flush_due(self) -> int:
        """Flush every group past its age or size; returns how many segments were written."""
        n = 0
        for gid in self.j.due():
            lock = self._locks[gid]
            if lock.locked():
                continue  # being handled right now; the next tick sees it
            async with lock:
                if await self._flush_locked(gid, hold=False):
                    n += 1
        metrics.OLDEST_BUFFER.set(self.j.oldest_age())
        return n

    async def flush_all(self) -> None:
        for gid in list(self.j.due(now=float("inf"))):
            async with self._locks[gid]:
                await self._flush_locked(gid)

    async def _flush_locked(self, gid: GroupId, hold: bool = True) -> bool:
        """Flush one group (its lock held); False when nothing was written.

        A failed write keeps the buffer, unacked, for the next attempt. With
        ``hold`` (the message path) and a backlog of max_buffer_factor
        segments, retry here until the store answers instead.
        """
        t0 = time.perf_counter()
        try:
            if hold and self.j.buffered_bytes(*gid) >= self.j.max_bytes * self.max_buffer_factor:
                # The store has been failing for a while: hold the agent here
                # (faust then pauses fetching) rather than grow memory.
                entry, handles = await self._retry(lambda: self.j.flush(*gid), f"flush {gid[0]}/{gid[1]}")
            else:
                entry, handles = await asyncio.to_thread(self.j.flush, *gid)
        except ObjectStoreError as err:
            self.last_flush_error = str(err)
            metrics.FLUSH_ERRORS.inc()
            log.error("group %s/%s: segment not written (%s); kept in memory, not acked, retrying", *gid, err)
            return False
        if entry is None:
            return False
        self.last_flush_error = None
        metrics.SEGMENTS.inc()
        metrics.SEGMENT_BYTES.inc(entry.size)
        metrics.RECORDS.inc(entry.last_seq - entry.first_seq + 1)
        metrics.FLUSH_SECONDS.observe(time.perf_counter() - t0)
        metrics.LAG_SECONDS.observe(max(0.0, time.time() - entry.last_ts / 1e9))
        self.acks.done(handles)
        return True

    async def _retry(self, fn: Callable[[], Any], what: str, pause: float = 0.5, max_pause: float = 10.0) -> Any:
        while True:
            try:
                return await asyncio.to_thread(fn)
            except ObjectStoreError as err:
                self.last_flush_error = f"{what}: {err}"
                metrics.FLUSH_ERRORS.inc()
                log.error("%s failed (%s); retrying in %.1fs - is MinIO reachable?", what, err, pause)
                await asyncio.sleep(pause)
                pause = min(max_pause, pause * 2)

    def revoke(self, tps: set[Hashable]) -> None:
        """Partitions taken away: forget their groups' buffers and positions (no acks)."""
        gids = {gid for gid, tp in self._tp_of.items() if tp in tps}
        self.j.forget(gids)
        self.acks.forget(tps)
        for gid in gids:
            self._tp_of.pop(gid, None)
