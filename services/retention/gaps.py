"""Sequence gaps: hold the commit, mark the group broken, clear it once the resend is durable.

Contract (docs/retention.md "Sequence gaps"):

* A message that skips sequences the journal does not hold is never acked:
  its handle stays un-done in :class:`services.retention.acks.OrderedAcks`,
  so no Kafka offset of its partition is committed at or past it. Later
  messages of the group that are gaps too are held the same way.
* The first gap of a group marks it broken: ``groups/<group>/broken.json``
  in the tenant's bucket, a ``GroupBroken`` control event (shared.broken),
  the ``dialback_retention_groups_broken`` gauge and /healthz.
* Once the journal is durable past ``expected`` (the resend arrived), held
  messages whose records are all durable are marked done (they were
  duplicates of the resend) and the mark is cleared (``GroupRepaired``).
* Marking and clearing run in order per group, retried until they succeed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from services.retention import metrics
from services.retention.acks import Pending
from services.retention.journaler import GroupId, Journaler
from shared import broken

log = logging.getLogger(__name__)

# (tenant, group, event) -> None, blocking: sends one control event (key shared.broken.event_key)
Notify = Callable[[str, str, dict], None]


class Gaps:
    def __init__(self, journaler: Journaler, notify: Notify | None = None, retry_pause: float = 0.5) -> None:
        self.j = journaler
        self.notify = notify
        self.retry_pause = retry_pause
        self.broken: dict[GroupId, int] = {}               # group -> first missing sequence
        self._held: dict[GroupId, list[tuple[int, Pending]]] = {}  # (last sequence, handle) of gap messages
        self._alarms: dict[GroupId, asyncio.Future] = {}

    def hold(self, gid: GroupId, handle: Pending) -> None:
        """A GAP outcome (``journaler.last_gap`` set): keep the message un-acked; mark the group once."""
        expected, seen, last = self.j.last_gap  # type: ignore[misc]
        self._held.setdefault(gid, []).append((last, handle))
        if gid in self.broken:
            return
        self.broken[gid] = expected
        metrics.GROUPS_BROKEN.set(len(self.broken))
        log.error("group %s/%s: journal lacks sequence %d (message holds %d..%d); group marked broken, nothing "
                  "of its partition is committed past it until the agent resends from %d (ingest asks it to)",
                  *gid, expected, seen, last, expected)
        self._chain(gid, lambda: self._mark(gid, expected, seen))

    def loaded(self, gid: GroupId, mark: dict | None) -> None:
        """After the group's timeline was loaded: adopt (or clear, if now whole) a mark left in the store."""
        if mark is None:
            return
        nxt = self.j.next_expected(*gid)
        expected = mark.get("expected")
        if expected is not None and nxt > expected:
            self._chain(gid, lambda: self._clear(gid, expected, nxt - 1))
        else:
            self.broken[gid] = expected if expected is not None else nxt
            metrics.GROUPS_BROKEN.set(len(self.broken))

    def durable(self, gid: GroupId, last_seq: int) -> list[Pending]:
        """The journal is durable through ``last_seq``: the held handles now safe to ack; clears a mark."""
        held = self._held.get(gid)
        done: list[Pending] = []
        if held:
            keep = []
            for last, h in held:
                if last <= last_seq:
                    done.append(h)
                else:
                    keep.append((last, h))
            if keep:
                self._held[gid] = keep
            else:
                del self._held[gid]
        expected = self.broken.get(gid)
        if expected is not None and last_seq >= expected:
            del self.broken[gid]
            metrics.GROUPS_BROKEN.set(len(self.broken))
            log.warning("group %s/%s: sequences from %d are durable again (through %d); broken mark cleared",
                        *gid, expected, last_seq)
            self._chain(gid, lambda: self._clear(gid, expected, last_seq))
        return done

    def forget(self, gids: set[GroupId]) -> None:
        """Partitions revoked: the new owner meets the gap again (its messages are redelivered)."""
        for gid in gids:
            self.broken.pop(gid, None)
            self._held.pop(gid, None)
        metrics.GROUPS_BROKEN.set(len(self.broken))

    def status(self) -> dict[str, int]:
        return {f"{t}/{g}": e for (t, g), e in sorted(self.broken.items())}

    async def settle(self) -> None:
        """Wait for marks and clears in progress (tests, shutdown)."""
        if self._alarms:
            await asyncio.gather(*self._alarms.values(), return_exceptions=True)

    # -- the durable side, in order per group ----------------------------------

    def _chain(self, gid: GroupId, step: Callable[[], Any]) -> None:
        prev = self._alarms.get(gid)

        async def run() -> None:
            if prev is not None:
                await asyncio.gather(prev, return_exceptions=True)
            await step()

        fut = asyncio.ensure_future(run())
        self._alarms[gid] = fut
        fut.add_done_callback(lambda f, gid=gid: self._alarms.pop(gid, None) if self._alarms.get(gid) is f else None)

    async def _mark(self, gid: GroupId, expected: int, seen: int) -> None:
        tenant, group = gid
        await self._until_done(lambda: broken.write_mark(self.j.store, self.j.bucket(tenant), group, expected, seen),
                               f"write broken mark of {tenant}/{group}")
        await self._send(tenant, group, broken.broken_event(group, expected, seen))

    async def _clear(self, gid: GroupId, expected: int, through: int) -> None:
        tenant, group = gid
        await self._send(tenant, group, broken.repaired_event(group, expected, through))
        await self._until_done(lambda: broken.clear_mark(self.j.store, self.j.bucket(tenant), group),
                               f"clear broken mark of {tenant}/{group}")

    async def _send(self, tenant: str, group: str, event: dict) -> None:
        if self.notify is not None:
            await self._until_done(lambda: self.notify(tenant, group, event),  # type: ignore[misc]
                                   f"{event['type']} event of {tenant}/{group}")

    async def _until_done(self, fn: Callable[[], Any], what: str) -> None:
        pause = self.retry_pause
        while True:
            try:
                await asyncio.to_thread(fn)
                return
            except Exception as err:  # noqa: BLE001 - store or Kafka down: the alarm must still get out
                log.error("%s failed (%s); retrying in %.1fs", what, err, pause)
                await asyncio.sleep(pause)
                pause = min(10.0, pause * 2)
