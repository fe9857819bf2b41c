"""Ingest's application layer: registration, batches, state, serialization.

Concurrency: one asyncio.Lock per tenant guards loading the tenant's state
and registering groups (volume ids are unique across a tenant's groups); one
asyncio.Lock per group serializes batches, so two concurrent posts cannot
both pass the continuity check. Blocking Kafka calls run in worker threads.

Reordering: an agent may have two bodies of a group in flight; the second
can win the group lock first. A body that would be a gap waits (releasing
the lock) while another body of its group is still arriving, up to
``reorder_wait_s``, and is planned again after each acknowledgement; with
nothing else arriving, a gap is refused at once (409), as before.

Durability: a batch is acknowledged (and ``acked_through`` advanced in
memory) only after the writes log AND the control log acknowledged. If
either fails, the caller gets IngestUnavailable and the state is unchanged;
the agent resends, and a batch that did reach the writes log lands twice,
which retention tolerates (data-path.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from services.ingest.batches import BodyPlan, plan_body, plan_single
from services.ingest.bus import BusUnavailable, ControlLog, WritesLog
from services.ingest.config import DEFAULT_MAX_VOLUME_BYTES
from services.ingest.errors import (GroupConflict, IngestUnavailable, InvalidRegistration, SequenceGap,
                                   TransportMisconfigured, UnknownGroup)
from services.ingest.incarnation import check_batch, on_register, parse_registration
from services.ingest.metrics import IngestMetrics
from services.ingest.state import GroupState, TenantState, acked_event, registered_event
from services.ingest.transport import TransportKeys, open_body
from services.ingest.usage import IngestUsage
from shared.broken import GROUP_BROKEN, GROUP_REPAIRED
from shared.crypto.bus import BusSealError
from shared.errors import InvalidName
from shared.tenancy import check_volume

log = logging.getLogger(__name__)

MAX_VOLUMES = 64


def check_group_id(group: str) -> str | None:
    """The group id if valid, else None (callers answer 404: nothing to infer)."""
    try:
        return check_volume(group)
    except InvalidName:
        return None


def parse_volumes(volumes: list[dict] | object, max_size: int = DEFAULT_MAX_VOLUME_BYTES) -> dict[str, int]:
    if not isinstance(volumes, list) or not volumes:
        raise InvalidRegistration('"volumes" must be a non-empty list of {"volume": id, "size": bytes}')
    if len(volumes) > MAX_VOLUMES:
        raise InvalidRegistration(f"a group holds at most {MAX_VOLUMES} volumes, got {len(volumes)}")
    out: dict[str, int] = {}
    for v in volumes:
        try:
            name, size = check_volume(v["volume"]), v["size"]
        except InvalidName as err:
            raise InvalidRegistration(str(err)) from err
        except (KeyError, TypeError) as err:
            raise InvalidRegistration(f'each volume needs "volume" and "size"; got {v!r}') from err
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise InvalidRegistration(f"volume {name!r}: size must be a positive number of bytes, got {size!r}")
        if size > max_size:
            raise InvalidRegistration(f"volume {name!r}: size {size} bytes is over ingest's limit of {max_size} "
                                      "bytes (DIALBACK_INGEST_MAX_VOLUME_BYTES); register the real disk size "
                                      "or ask the operator to raise the limit")
        if name in out:
            raise InvalidRegistration(f"volume {name!r} is listed twice")
        out[name] = size
    return out


class IngestService:
    def __init__(self, writes: WritesLog, control: ControlLog, metrics: IngestMetrics | None = None,
                 keys: TransportKeys | None = None, usage: IngestUsage | None = None,
                 reorder_wait_s: float = 5.0, max_volume_bytes: int = DEFAULT_MAX_VOLUME_BYTES) -> None:
        self.writes, self.control = writes, control
        self.max_volume_bytes = max_volume_bytes
        self.reorder_wait_s = reorder_wait_s
        self._arriving: dict[tuple[str, str], int] = {}
        self._acked: dict[tuple[str, str], asyncio.Condition] = {}
        self.metrics = metrics or IngestMetrics()
        self.keys = keys or TransportKeys(None)
        self.usage = usage
        self._tenants: dict[str, TenantState] = {}
        self._tenant_locks: dict[str, asyncio.Lock] = {}
        self._group_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._running: set[asyncio.Future] = set()

    # -- state ---------------------------------------------------------------

    def _load_blocking(self, tenant: str) -> TenantState:
        self.writes.ensure(tenant)
        self.control.ensure(tenant)
        if self.usage is not None:
            self.usage.ensure()
        return TenantState.replay(self.control.replay(tenant))

    async def tenant(self, tenant: str) -> TenantState:
        """The tenant's state, replayed from its control log on first use."""
        st = self._tenants.get(tenant)
        if st is not None:
            return st
        async with self._tenant_locks.setdefault(tenant, asyncio.Lock()):
            st = self._tenants.get(tenant)
            if st is None:
                try:
                    st = await asyncio.to_thread(self._load_blocking, tenant)
                except BusUnavailable as err:
                    raise IngestUnavailable(f"cannot load state from Kafka: {err}") from err
                self._tenants[tenant] = st
                log.info("tenant %s: %d groups replayed", tenant, len(st.groups))
        return st

    async def preload(self, tenants: list[str]) -> None:
        """Load known tenants at startup; a failure is logged and retried on first use."""
        for i, t in enumerate(tenants):
            try:
                await self.tenant(t)
            except IngestUnavailable as err:
                # Kafka is down: waiting out a timeout per tenant would only delay startup.
                log.warning("Kafka unavailable at startup (%s); %d tenants will be loaded on first request",
                            err, len(tenants) - i)
                return

    # -- groups --------------------------------------------------------------

    async def get_group(self, tenant: str, group: str) -> GroupState:
        st = await self.tenant(tenant)
        gs = st.groups.get(group) if check_group_id(group) else None
        if gs is None:
            raise UnknownGroup(f"group {group!r} not found; register it with PUT /v1/groups/{group}")
        return gs

    async def register_group(self, tenant: str, group: str, volumes: object, incarnation: object = None,
                             reprotect: object = False) -> tuple[GroupState, bool]:
        """Register (idempotent). Returns (state, created).

        ``incarnation``: the registering spool's (services.ingest.incarnation); another one than
        the group's is refused unless ``reprotect``, which starts a new epoch after acked_through.
        """
        if check_group_id(group) is None:
            raise InvalidRegistration(f"group id {group!r} is invalid: use 1-64 characters A-Z a-z 0-9 . _ -")
        wanted = parse_volumes(volumes, self.max_volume_bytes)
        incarnation, reprotect = parse_registration(incarnation, reprotect)
        st = await self.tenant(tenant)
        async with self._tenant_locks.setdefault(tenant, asyncio.Lock()):
            old = st.groups.get(group)
            if old is not None:
                if old.volumes != wanted:
                    raise GroupConflict(
                        f"group {group!r} is already registered with volumes {old.volumes_list()}; "
                        "a group's volumes cannot change - register a new group"
                    )
                return await self._register_again(tenant, st, group, incarnation, reprotect), False
            for v in wanted:
                if v in st.volume_owner:
                    raise GroupConflict(f"volume {v!r} already belongs to group {st.volume_owner[v]!r}")
            new = GroupState(group, wanted, incarnation=incarnation, epoch=1 if incarnation else 0)
            await self._append_control(tenant, new, registered_event(new))
            st.put(new)
            return new, True

    async def _register_again(self, tenant: str, st: TenantState, group: str, incarnation: str | None,
                              reprotect: bool) -> GroupState:
        """A known group registered again: the same spool, an adopted one, a new epoch or a refusal."""
        # Under the group's lock: a batch of the old spool in flight must land (or not) before
        # the new epoch's first sequence is fixed from acked_through.
        async with self._group_locks.setdefault((tenant, group), asyncio.Lock()):
            gs = st.groups[group]
            change = on_register(gs, incarnation, reprotect)
            if change is None:
                return gs
            new, event = change
            await self._append_control(tenant, new, event)
            st.put(new)
        log.warning("tenant %s group %s: %s spool %s, epoch %d from sequence %d (was spool %s)", tenant, group,
                    event["type"], incarnation, new.epoch, new.epoch_first_seq, gs.incarnation)
        return new

    # -- batches -------------------------------------------------------------

    @contextlib.contextmanager
    def arriving(self, tenant: str, group: str):
        """Count a body of the group from its first byte to its answer (see "Reordering")."""
        key = (tenant, group)
        self._arriving[key] = self._arriving.get(key, 0) + 1
        try:
            yield
        finally:
            self._arriving[key] -= 1
            if not self._arriving[key]:
                del self._arriving[key]
            if key in self._acked:  # a body waiting for this one re-checks (this one may have failed)
                asyncio.ensure_future(self._wake(self._acked[key]))

    @staticmethod
    async def _wake(cond: asyncio.Condition) -> None:
        async with cond:
            cond.notify_all()

    def _condition(self, tenant: str, group: str) -> asyncio.Condition:
        key = (tenant, group)
        if key not in self._acked:
            self._acked[key] = asyncio.Condition(self._group_locks.setdefault(key, asyncio.Lock()))
        return self._acked[key]

    async def accept_batch(self, tenant: str, group: str, body: bytes, sealed: bool = False,
                           multi: bool = False, incarnation: str | None = None) -> tuple[int, BodyPlan]:
        """Open (if sealed), validate, produce and acknowledge one body; returns (acked_through, plan).

        ``multi``: the body holds several batches (shared.bodies); each is produced as its own
        message, all in one wait, then ONE control event acknowledges the whole body.
        ``incarnation``: the sending spool's; it must be the group's (checked again under the lock).
        """
        check_batch(await self.get_group(tenant, group), incarnation)
        # Opening needs no group state: outside the lock; a refusal produces nothing.
        body, sealed_range = await asyncio.to_thread(open_body, self.keys, tenant, group, body, sealed)
        # A client that disconnects must not cut the work short between the
        # writes produce and the control append, nor release the group's lock
        # while a produce is still running in its thread: run it as its own task.
        task = asyncio.ensure_future(self._accept_locked(tenant, group, body, sealed_range, multi, incarnation))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return await asyncio.shield(task)

    async def _accept_locked(self, tenant: str, group: str, body: bytes,
                             sealed_range: tuple[int, int] | None, multi: bool,
                             incarnation: str | None = None) -> tuple[int, BodyPlan]:
        st = self._tenants[tenant]
        acked = self._condition(tenant, group)
        deadline = time.monotonic() + self.reorder_wait_s
        async with acked:
            while True:
                gs = st.groups[group]  # re-read under the lock: a previous batch may have advanced it
                check_batch(gs, incarnation)  # or a re-protection given the group to another spool
                try:
                    plan = await asyncio.to_thread(plan_body if multi else plan_single, body, gs, sealed_range)
                    break
                except SequenceGap:
                    left = deadline - time.monotonic()
                    if self._arriving.get((tenant, group), 0) <= 1 or left <= 0:
                        raise
                    # Another body of the group is arriving: it may be the one before this. Then
                    # plan again; past the deadline a gap that is still there is refused above.
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(acked.wait(), left)
            if plan.duplicate:
                return gs.acked_through, plan
            t0 = time.perf_counter()
            try:
                # Every message of the body in flight at once (idempotent producer: in order,
                # no duplicates from its own retries); returns once Kafka acknowledged them all.
                await asyncio.to_thread(self.writes.publish_many, tenant, group,
                                        [(p.data, p.first_seq, p.last_seq) for p in plan.parts])
            except BusUnavailable as err:
                raise IngestUnavailable(f"Kafka did not take the batch: {err}") from err
            except BusSealError as err:  # nothing produced: the key is fetched before the first record
                log.error("tenant %s group %s: %s", tenant, group, err)  # the detail (paths) for the operator
                raise TransportMisconfigured("ingest cannot seal the batch for Kafka with this tenant's bus key; "
                                             "the operator must check DIALBACK_MASTER_KEY_FILE and the keyring "
                                             "(ingest's log says more)") from err
            finally:
                self.metrics.produce_seconds.labels("writes").observe(time.perf_counter() - t0)
            # Only now, with every record of the body durable in the writes log, may the
            # control log (what a restarted ingest believes) move past them.
            new = gs.acked(plan.acked_through, plan.last_timestamp_ns)
            await self._append_control(tenant, new, acked_event(new))
            st.put(new)
            acked.notify_all()
            if self.usage is not None:
                self.usage.batch_acked(tenant, group, plan.first_seq, plan.acked_through, plan.payload_bytes)
            return new.acked_through, plan

    # -- retention's broken/repaired events ---------------------------------------

    async def follow_control(self, interval_s: float) -> None:
        """Forever: fold retention's GroupBroken/GroupRepaired events of loaded tenants into their groups.

        A GroupBroken moves ``acked_through`` back to ``expected - 1`` (services.ingest.state), so the
        agent's next body is answered 409 {"expected": N} and the agent resends from N (or resyncs).
        """
        while True:
            for tenant in list(self._tenants):
                try:
                    events = await asyncio.to_thread(self.control.follow, tenant)
                except BusUnavailable as err:
                    log.warning("cannot follow the control log of tenant %s (%s); retrying", tenant, err)
                    continue
                for ev in events:
                    if isinstance(ev, dict) and ev.get("type") in (GROUP_BROKEN, GROUP_REPAIRED):
                        await self.apply_retention_event(tenant, ev)
            await asyncio.sleep(interval_s)

    async def apply_retention_event(self, tenant: str, event: dict) -> None:
        st = await self.tenant(tenant)
        group = event.get("group")
        if group not in st.groups:
            return
        cond = self._condition(tenant, group)
        async with cond:  # not while a body of the group is being produced
            before = st.groups[group]
            st.apply(event)
            after = st.groups[group]
            cond.notify_all()
        if after.broken is not None and before.broken is None:
            log.error("tenant %s group %s: retention lacks sequence %d; acked_through %d -> %d, the agent is "
                      "asked to resend from there", tenant, group, after.broken, before.acked_through,
                      after.acked_through)
        elif before.broken is not None and after.broken is None:
            log.warning("tenant %s group %s: retention's journal is whole again", tenant, group)

    async def _append_control(self, tenant: str, state: GroupState, event: dict) -> None:
        t0 = time.perf_counter()
        try:
            await asyncio.to_thread(self.control.append, tenant, state.group, event)
        except BusUnavailable as err:
            raise IngestUnavailable(f"Kafka did not take the control event: {err}") from err
        finally:
            self.metrics.produce_seconds.labels("control").observe(time.perf_counter() - t0)

    def close(self) -> None:
        if self.usage is not None:
            self.usage.close()
        for log_ in (self.writes, self.control):
            log_.close()
