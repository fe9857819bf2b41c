"""The async side of retention: events in, durable segments out, acks after.

Blocking object-store I/O runs in threads so the event loop keeps Kafka
heartbeats going. A lock per group serialises that group's offers and
seals. Uploads are pipelined: a full (or aged) buffer is sealed and its
segment uploaded in the background while the group keeps buffering; at most
``max_inflight`` uploads per group are pending (then the message path waits,
which pauses fetching). Timeline entries are written strictly in sequence
order per group, each only after the previous one is durable, and a
segment's messages are acked only after its entry is durable (acks.py keeps
the acks in offset order per partition). A message that skips sequences is
never acked (gaps.py): nothing of its partition is committed past it until
the missing sequences are durable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from typing import Any, Callable, Hashable

from services.retention import metrics
from services.retention.acks import OrderedAcks
from services.retention.gaps import Gaps, Notify
from services.retention.journaler import GroupId, Journaler, Outcome, Sealed
from shared.broken import read_mark
from shared.crypto.bus import BusSeal, BusSealError, Headers
from shared.objectstore import ObjectStoreError
from shared.tenancy import check_volume, tenant_of_topic

log = logging.getLogger(__name__)


class Processor:
    def __init__(self, journaler: Journaler, ack: Callable[[Any], Any], max_buffer_factor: int = 4,
                 max_inflight: int = 2, notify: Notify | None = None, bus: BusSeal | None = None) -> None:
        self.j = journaler
        # Opens records sealed under the tenant's bus key; plaintext mode without a keyring.
        self.bus = bus or BusSeal(None)
        self.acks = OrderedAcks(ack)
        self.gaps = Gaps(journaler, notify)
        self._locks: dict[GroupId, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._tp_of: dict[GroupId, Hashable] = {}
        # Per group, the segments being uploaded, oldest first (see docs/retention.md "Pipelined uploads").
        self._inflight: dict[GroupId, deque[_Upload]] = defaultdict(deque)
        self.max_buffer_factor = max_buffer_factor  # kept for callers; the bound is now max_inflight
        self.max_inflight = max(1, max_inflight)
        self.retry_pause = 0.5
        self.last_flush_error: str | None = None

    async def on_message(self, topic: str, tp: Hashable, key: bytes | None, value: bytes, item: Any,
                         headers: Headers = None) -> Outcome:
        """Handle one writes-topic message; ``item`` is what gets acked once durable.

        A record that may not or cannot be opened (plaintext while a master key is configured, sealed
        without one, altered or moved) is refused like a corrupt batch: counted, logged, not buffered.
        Its sequences are then missing, so the group's next record is a gap (gaps.py: commits held,
        ingest asked for a resend), never a journal that silently skips data.
        """
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
        try:
            value = self.bus.open(tenant, group, value, headers)
        except BusSealError as err:
            log.error("message on %s: %s", topic, err)
            metrics.REFUSED.labels("seal").inc()
            self.acks.done([handle])
            return Outcome.CORRUPT
        gid = (tenant, group)
        self._tp_of[gid] = tp
        async with self._locks[gid]:
            if self.j.needs_load(tenant, group):
                await self._settle(gid)  # uploads of a revoked generation finish (or stop) before we list
                await self._retry(lambda: self.j.next_expected(tenant, group), f"read timeline of {tenant}/{group}")
                mark: list = []
                await self._retry(lambda: mark.append(read_mark(self.j.store, self.j.bucket(tenant), group)),
                                  f"read broken mark of {tenant}/{group}")
                self.gaps.loaded(gid, mark[0] if mark else None)
            outcome = self.j.offer(tenant, group, value, handle)
            if outcome is Outcome.GAP:
                metrics.REFUSED.labels(outcome.value).inc()
                self.gaps.hold(gid, handle)  # never acked until the missing sequences are durable
            elif outcome is not Outcome.BUFFERED:
                if outcome is Outcome.DUPLICATE:
                    metrics.DUPLICATES.inc()
                else:
                    metrics.REFUSED.labels(outcome.value).inc()
                self.acks.done([handle])
            elif self.j.full(tenant, group):
                # Hold the agent (faust then pauses fetching) while max_inflight uploads are pending:
                # memory stays bounded when the store is slow or down.
                await self._make_room(gid)
                self._launch(gid)
        return outcome

    async def flush_due(self, wait: bool = True) -> int:
        """Start uploads for every group past its age or size; with ``wait``, returns how many became durable.

        A group with max_inflight uploads pending is skipped (the next tick sees it).
        """
        started: list[_Upload] = []
        for gid in self.j.due():
            lock = self._locks[gid]
            if lock.locked() or len(self._pending(gid)) >= self.max_inflight:
                continue
            async with lock:
                up = self._launch(gid)
                if up is not None:
                    started.append(up)
        metrics.OLDEST_BUFFER.set(self.j.oldest_age())
        if not wait:
            return len(started)
        done = await asyncio.gather(*(u.task for u in started))
        return sum(1 for ok in done if ok)

    async def flush_all(self) -> None:
        """Every buffer durable (and acked) before returning: used before a restart."""
        for gid in list(self.j.due(now=float("inf"))):
            async with self._locks[gid]:
                self._launch(gid)
        await self.drain()

    async def drain(self) -> None:
        """Wait for every pending upload."""
        tasks = [u.task for q in self._inflight.values() for u in q]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _flush_locked(self, gid: GroupId, hold: bool = True) -> bool:
        """Seal the group's buffer and wait until it is durable (its lock held); False when nothing was written."""
        up = self._launch(gid)
        return bool(up and await up.task)

    def _pending(self, gid: GroupId) -> deque[_Upload]:
        q = self._inflight[gid]
        while q and q[0].task.done():
            done = q.popleft()
            if not done.task.cancelled() and done.task.exception() is not None:
                raise done.task.exception()  # a bug, not a store error: stop the agent as before
        return q

    async def _make_room(self, gid: GroupId) -> None:
        while len(self._pending(gid)) >= self.max_inflight:
            await asyncio.wait([self._inflight[gid][0].task])

    def _launch(self, gid: GroupId) -> _Upload | None:
        """Seal the group's buffer and start its upload behind the group's earlier ones (lock held)."""
        sealed = self.j.seal(*gid)
        if sealed is None:
            return None
        q = self._pending(gid)
        prev = q[-1] if q else None
        up = _Upload(sealed)
        up.task = asyncio.ensure_future(self._upload(up, prev))
        q.append(up)
        return up

    async def _upload(self, up: _Upload, prev: _Upload | None) -> bool:
        """Segment PUT (overlapping anything), then - after the previous entry - timeline entry PUT, then acks."""
        sealed, t0 = up.sealed, time.perf_counter()
        what = f"segment {sealed.tenant}/{sealed.group} {sealed.first_seq}-{sealed.last_seq}"
        if not await self._retry(lambda: self.j.write_segment(sealed), what, stop=lambda: sealed.aborted):
            return False
        if prev is not None and not await prev.task:
            sealed.aborted = True  # the previous entry was not written: neither may this one be
            return False
        if sealed.aborted or not await self._retry(lambda: self.j.write_entry(sealed), f"timeline of {what}",
                                                   stop=lambda: sealed.aborted):
            return False
        entry = sealed.entry
        self.last_flush_error = None
        metrics.SEGMENTS.inc()
        metrics.SEGMENT_BYTES.inc(entry.size)
        metrics.RECORDS.inc(entry.last_seq - entry.first_seq + 1)
        metrics.FLUSH_SECONDS.observe(time.perf_counter() - t0)
        metrics.LAG_SECONDS.observe(max(0.0, time.time() - entry.last_ts / 1e9))
        # Gap messages held back whose records the journal now holds are acked with this segment.
        self.acks.done(sealed.tokens + self.gaps.durable((sealed.tenant, sealed.group), entry.last_seq))
        return True

    async def _retry(self, fn: Callable[[], Any], what: str, pause: float | None = None, max_pause: float = 10.0,
                     stop: Callable[[], bool] = lambda: False) -> Any:
        """Run ``fn`` in a thread until the store answers; returns its result (True for None), False if stopped."""
        pause = self.retry_pause if pause is None else pause
        while not stop():
            try:
                res = await asyncio.to_thread(fn)
                return True if res is None else res
            except ObjectStoreError as err:
                self.last_flush_error = f"{what}: {err}"
                metrics.FLUSH_ERRORS.inc()
                log.error("%s failed (%s); kept in memory, not acked, retrying in %.1fs - is MinIO reachable?",
                          what, err, pause)
                await asyncio.sleep(pause)
                pause = min(max_pause, pause * 2)
        return False

    async def _settle(self, gid: GroupId) -> None:
        q = self._inflight.pop(gid, None)
        if q:
            await asyncio.gather(*(u.task for u in q), return_exceptions=True)

    def revoke(self, tps: set[Hashable]) -> None:
        """Partitions taken away: forget their groups' buffers and positions (no acks).

        Their pending uploads stop before their next PUT (a PUT already running
        completes); :meth:`settle` waits for that, and a group's next load does too.
        """
        gids = {gid for gid, tp in self._tp_of.items() if tp in tps}
        for gid in gids:
            for up in self._inflight.get(gid, ()):
                up.sealed.aborted = True
        self.j.forget(gids)
        self.gaps.forget(gids)
        self.acks.forget(tps)
        for gid in gids:
            self._tp_of.pop(gid, None)

    async def settle(self) -> None:
        """After :meth:`revoke`: wait until the aborted uploads stopped (others keep running)."""
        tasks = [u.task for q in self._inflight.values() for u in q if u.sealed.aborted]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


class _Upload:
    __slots__ = ("sealed", "task")

    def __init__(self, sealed: Sealed) -> None:
        self.sealed = sealed
        self.task: asyncio.Future[bool]
