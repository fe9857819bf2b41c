"""Ships spooled records to ingest and trims the spool on acknowledgement.

Contract: docs/data-path.md ("Agent → ingest"). Records leave in sequence
order from ``acked_through + 1`` in v1 batches of at most MAX_BATCH_BYTES,
up to ``batches_per_post`` of them per request (multi-batch body,
shared.bodies; one request in flight, the next body built meanwhile),
DATA payloads zstd-compressed when that is smaller, then sealed with the
tenant's transport key when the agent has one (docs/encryption.md,
"Transport"; the first..last range of the batch is bound into the AAD). Connection errors, 5xx
and 429 are retried with capped exponential backoff, forever: the spool is
what makes an outage lose nothing. A 503/429 carrying Retry-After (ingest
over its in-flight byte caps) is retried no sooner than that (capped at
MAX_RETRY_AFTER), and the same alarm again is logged once, not per retry. So are 401/403 (a revoked or expired agent
credential, raised as the ``credentials`` alarm) and a 403 with
``Dialback-Reason: licence`` (protection switched off for the group, raised as
the ``licence`` alarm with ingest's message): nothing is trimmed, shipping
resumes by itself once the credential or the licence is fixed. A 409 moves the cursor to the sequence
ingest expects; when the spool no longer holds it, a bridge of no-op records
is sent up to the spool's first record and every volume is resynced
(agent.bridge).

Incarnation (shared.incarnation): the spool's id goes with the registration
and every batch. Ingest refusing it (409, reason "incarnation": another spool
protects the group) and ingest acknowledging past anything this spool ever
numbered (an ingest deduplicating a new spool against an old journal) both
raise the ``incarnation`` alarm and leave the spool untouched: nothing is
trimmed. ``reprotect`` asks ingest to start a new epoch for this spool; the
group then renumbers after ingest's acked_through and syncs again.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import logging
import ssl
import time
from dataclasses import dataclass

import httpx

from agent.bridge import bridge_batch
from agent.group import Group
from shared.crypto.transport import SEALED_CONTENT_TYPE, seal
from shared.bodies import BATCHES_CONTENT_TYPE, MAX_BATCHES_PER_BODY, SEALED_BATCHES_CONTENT_TYPE, join_body
from shared.frames import HEADER_SIZE, MAX_BATCH_BYTES, OversizedFrame, batch_head, record_parts
from shared.incarnation import HEADER as INCARNATION_HEADER
from shared.journal import compress_record

log = logging.getLogger(__name__)

ALARM_SHIP = "shipping"
ALARM_GAP = "ingest_gap"
ALARM_INCARNATION = "incarnation"
ALARM_LICENCE = "licence"  # ingest refuses batches: protection is switched off for the group
ALARM_AUTH = "credentials"  # ingest does not accept this agent's token (unknown, revoked, expired, wrong scope)
REASON_HEADER = "dialback-reason"  # ingest names why it refused a batch (e.g. "licence")
CONTENT_TYPE = "application/x-dialback-batch"
MAX_RETRY_AFTER = 300.0  # an answer cannot park shipping for longer than this


def retry_after(resp: httpx.Response) -> float:
    """Seconds a 503/429 answer asks the client to wait (Retry-After: seconds or an HTTP date); 0 if none."""
    value = resp.headers.get("retry-after", "").strip()
    if not value:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return 0.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


@dataclass
class _Sent:
    """A body on the wire: its sequences, its size and the request."""

    first: int
    last: int
    size: int
    post: asyncio.Future


def batch_parts(group: Group, first: int, max_batches: int = 1,
                max_bytes: int = MAX_BATCH_BYTES) -> tuple[list[list], int] | None:
    """Records first.. as up to ``max_batches`` consecutive batches, each a list of buffers that
    joined is one v1 batch; (batches, last) or None.

    A record that stays as spooled (not worth compressing) goes in as its spooled encoding, CRC
    and all, not encoded again (Spool.read_entries); nothing is copied until the body is joined.
    """
    entries = group.spool.read_entries(first, (max_batches + 1) * max_bytes)
    batches: list[list] = []
    out: list = []
    size, count, last, seq = HEADER_SIZE, 0, 0, 0
    for rec, raw in entries:
        # zstd when it saves 1/8, one reused compressor per thread, and a 16 KiB probe first so
        # incompressible writes are not compressed whole (shared.journal.compress_record).
        packed = compress_record(rec)
        parts = raw if packed is rec and raw is not None else record_parts(packed)
        n = sum(len(p_) for p_ in parts)
        if count and size + n > max_bytes:
            batches.append([batch_head(count, size - HEADER_SIZE), *out])
            last, out, size, count = seq, [], HEADER_SIZE, 0
            if len(batches) == max_batches:
                break
        out += parts
        size += n
        count += 1
        seq = rec.sequence
        if size > MAX_BATCH_BYTES:  # one record over the frame limit: the spool never holds one
            raise OversizedFrame(f"record {seq} does not fit a {MAX_BATCH_BYTES}-byte batch")
    if count and len(batches) < max_batches:
        batches.append([batch_head(count, size - HEADER_SIZE), *out])
        last = seq
    return (batches, last) if batches else None


def build_batches(group: Group, first: int, max_batches: int = 1,
                  max_bytes: int = MAX_BATCH_BYTES) -> tuple[list[bytes], int] | None:
    """Encode records first.. into up to ``max_batches`` consecutive batches; (batches, last) or None."""
    built = batch_parts(group, first, max_batches, max_bytes)
    return None if built is None else ([b"".join(b) for b in built[0]], built[1])


def build_batch(group: Group, first: int, max_bytes: int = MAX_BATCH_BYTES) -> tuple[bytes, int] | None:
    """Encode records first.. into one batch; returns (body, last sequence) or None."""
    built = build_batches(group, first, 1, max_bytes)
    return None if built is None else (built[0][0], built[1])


def seal_batch(sealing: tuple[str, bytes] | None, group: str, first: int, last: int,
               batch: bytes) -> tuple[bytes, str]:
    """(body, content type): sealed under (tenant, transport key) when given, else as it is."""
    if sealing is None:
        return batch, CONTENT_TYPE
    tenant, key = sealing
    return seal(key, tenant, group, first, last, batch), SEALED_CONTENT_TYPE


def make_body(sealing: tuple[str, bytes] | None, group: str, first: int, last: int,
              batches: list[list], multi: bool) -> tuple[bytes, str]:
    """(body, content type): one batch as it is, or several framed (shared.bodies); sealed when keyed.

    ``batches``: batch_parts' buffer lists, joined here once, body and all.
    """
    if not multi:
        return seal_batch(sealing, group, first, last, b"".join(batches[0]))
    body = join_body(batches)
    if sealing is None:
        return body, BATCHES_CONTENT_TYPE
    tenant, key = sealing
    return seal(key, tenant, group, first, last, body), SEALED_BATCHES_CONTENT_TYPE


def _reason(resp: httpx.Response) -> str | None:
    try:
        return resp.json().get("reason")
    except (ValueError, AttributeError):
        return None


def _detail(resp: httpx.Response) -> str:
    try:
        return str(resp.json()["detail"])
    except (ValueError, KeyError, TypeError):
        return resp.text[:300]


def _ahead(acked: int, last: int) -> str:
    return (f"ingest reports the group acknowledged through sequence {acked}, but this spool only numbered up "
            f"to {last}: it is not the spool ingest knows (emptied, or the agent reinstalled), and ingest "
            "would drop its records as already held. Nothing is trimmed. Upgrade ingest to one that knows "
            "spool incarnations, then re-protect with `dialback protect ... --reprotect`")


class Shipper:
    def __init__(self, group: Group, ingest_url: str, token: str, bandwidth: int | None = None,
                 transport: httpx.AsyncBaseTransport | None = None, backoff_start: float = 0.2,
                 backoff_cap: float = 10.0, poll: float = 0.02, sealing: tuple[str, bytes] | None = None,
                 batches_per_post: int = MAX_BATCHES_PER_BODY, bodies_in_flight: int = 2,
                 reprotect: bool = False, tls: ssl.SSLContext | None = None):
        """``sealing``: (tenant, transport key) from the credentials file; None ships unsealed.

        ``tls``: the verifying context for https:// (AgentSettings.ingest_tls: CA bundle, pins);
        None: httpx's default verification. A connection that fails it is a TransportError like
        any other: retried, nothing acknowledged, nothing trimmed.

        ``batches_per_post``: up to this many batches per request (shared.bodies); 1 sends the
        single-batch body. An ingest that answers 415 to a multi-batch body (older than the
        format) makes the shipper fall back to 1 for good.

        ``reprotect``: register asking ingest to hand the group to this spool (a new epoch).
        """
        if not 1 <= batches_per_post <= MAX_BATCHES_PER_BODY:
            raise ValueError(f"batches_per_post must be 1..{MAX_BATCHES_PER_BODY}, got {batches_per_post}")
        if not 1 <= bodies_in_flight <= 4:
            raise ValueError(f"bodies_in_flight must be 1..4, got {bodies_in_flight}")
        self.bodies_in_flight = bodies_in_flight
        self._inflight: collections.deque[_Sent] = collections.deque()
        self.group = group
        self.reprotect = reprotect
        self.batches_per_post = batches_per_post
        self.sealing = sealing
        self.ingest_url = ingest_url.rstrip("/")
        self.token = token
        self.bandwidth = bandwidth
        self.transport = transport
        self.tls = tls
        self.backoff_start = backoff_start
        self.backoff_cap = backoff_cap
        self.poll = poll
        self.shipped_bytes = 0
        self.shipped_batches = 0
        self.connected = False
        self._delay = backoff_start
        self._ready_at = 0.0
        self._prefetch: tuple[int, bool, asyncio.Future] | None = None  # (first, multi, body being built)
        self._bridge: tuple[int, int] | None = None  # (start, end) of the bridge being sent (agent.bridge)
        self._persisting: asyncio.Future | None = None  # saving acked_through in a worker thread
        self._persist_again = False

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.ingest_url, transport=self.transport, timeout=30.0,
                                 verify=self.tls if self.tls is not None else True, follow_redirects=False,
                                 headers={"Authorization": f"Bearer {self.token}",
                                          INCARNATION_HEADER: self.group.state.incarnation})

    async def _backoff(self, stop: asyncio.Event, alarm: str | None = None, message: str = "",
                       at_least: float = 0.0) -> None:
        """Wait the current backoff, or ``at_least`` (a Retry-After) when longer; the same alarm again
        is logged at debug level, so a long outage is one warning, not one per retry."""
        self.connected = False
        wait = max(self._delay, at_least)
        if alarm:
            again = self.group.alarms.get(alarm) == message
            self.group.alarms[alarm] = message
            (log.debug if again else log.warning)("group %s: %s (retry in %.1fs)", self.group.name, message, wait)
        try:
            await asyncio.wait_for(stop.wait(), wait)
        except asyncio.TimeoutError:
            pass
        self._delay = min(self._delay * 2, self.backoff_cap)

    def _ok(self) -> None:
        self.connected = True
        self._delay = self.backoff_start
        for alarm in (ALARM_SHIP, ALARM_LICENCE, ALARM_AUTH):
            self.group.alarms.pop(alarm, None)

    async def _refused(self, resp: httpx.Response, stop: asyncio.Event, what: str) -> bool:
        """401/403 from ingest: raise an alarm with ingest's own words; the spool is kept. True if handled."""
        if resp.status_code == 403 and resp.headers.get(REASON_HEADER) == "licence":
            await self._backoff(stop, ALARM_LICENCE, f"{_detail(resp)} [spool kept: {what} waits]")
            return True
        if resp.status_code in (401, 403):
            await self._backoff(stop, ALARM_AUTH, f"ingest refused this agent's credentials (HTTP "
                                f"{resp.status_code}): {_detail(resp)}; writes keep spooling. Give the agent "
                                "a valid agent credentials file (`dialback token create TENANT --scope ingest "
                                "--credentials FILE`, or the rotated one) and restart it")
            return True
        return False

    async def run(self, stop: asyncio.Event) -> None:
        async with self._client() as client:
            await self.register(client, stop)
            try:
                while not stop.is_set():
                    if not await self.ship_once(client, stop):
                        try:
                            await asyncio.wait_for(stop.wait(), self.poll)
                        except asyncio.TimeoutError:
                            pass
            finally:
                if self._prefetch is not None:
                    self._prefetch[2].cancel()
                    self._prefetch = None
                await self._drop_inflight()
                await self.flush_acks()

    def _persist_soon(self) -> None:
        """Save the marked acked_through in a worker thread; one save at a time, the latest wins."""
        if self._persisting is not None and not self._persisting.done():
            self._persist_again = True
            return
        self._persist_again = False
        self._persisting = asyncio.ensure_future(asyncio.to_thread(self.group.spool.persist_acked))
        self._persisting.add_done_callback(self._persisted)

    def _persisted(self, fut: asyncio.Future) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            log.error("group %s: cannot save the spool state (%s); acknowledged records stay spooled "
                      "until a save succeeds", self.group.name, fut.exception())
        if self._persist_again:
            self._persist_soon()

    async def flush_acks(self) -> None:
        """Wait until every acknowledgement received so far is saved."""
        while self._persisting is not None and not self._persisting.done():
            await asyncio.wait([self._persisting])
        try:
            await asyncio.to_thread(self.group.spool.persist_acked)
        except OSError as err:
            log.error("group %s: cannot save the spool state at shutdown (%s); acknowledged records "
                      "will be resent and acknowledged again", self.group.name, err)

    async def register(self, client: httpx.AsyncClient, stop: asyncio.Event) -> bool:
        g = self.group
        body = {"volumes": [{"volume": v, "size": d.size} for v, d in sorted(g.disks.items())],
                "incarnation": g.state.incarnation, "reprotect": self.reprotect}
        while not stop.is_set():
            try:
                resp = await client.put(f"/v1/groups/{g.name}", json=body)
            except httpx.TransportError as err:
                await self._backoff(stop, ALARM_SHIP, f"cannot reach ingest at {self.ingest_url} to register: {err}")
                continue
            if resp.status_code == 409 and _reason(resp) == "incarnation":
                await self._backoff(stop, ALARM_INCARNATION, f"ingest refused this spool: {_detail(resp)}; "
                                                             "writes keep spooling, nothing is trimmed")
                continue
            if await self._refused(resp, stop, "registration"):
                continue
            if resp.status_code in (200, 201):
                if not await self._take_registration(resp, stop):
                    continue
                self._ok()
                if not g.state.registered:
                    g.state.registered = True
                    await asyncio.to_thread(g.spool.save_state)
                g.registered.set()
                log.info("group %s registered with ingest", g.name)
                return True
            await self._backoff(stop, ALARM_SHIP, f"ingest refused registration: HTTP {resp.status_code} "
                                f"{resp.text[:300]}", at_least=retry_after(resp))
        return False

    async def _take_registration(self, resp: httpx.Response, stop: asyncio.Event) -> bool:
        """Apply ingest's answer to the registration: renumber on a new epoch (re-protection),
        alarm (False) when ingest holds more than this spool ever numbered."""
        g = self.group
        try:
            info = resp.json()
            epoch, acked = info.get("epoch"), int(info.get("acked_through", 0))
        except (ValueError, TypeError, AttributeError):
            info, epoch, acked = {}, None, 0
        if isinstance(epoch, int) and epoch != g.state.epoch:
            if epoch > 1:
                # A new epoch for this spool: number after what ingest holds, copy the disks again.
                ts = int(info.get("last_timestamp_ns", 0) or 0)
                await asyncio.to_thread(g.renumber, acked, ts, epoch)
            else:
                g.state.epoch = epoch
                await asyncio.to_thread(g.spool.save_state)
        if acked > g.spool.last_seq:
            await self._backoff(stop, ALARM_INCARNATION, _ahead(acked, g.spool.last_seq))
            return False
        g.alarms.pop(ALARM_INCARNATION, None)
        return True

    async def ship_once(self, client: httpx.AsyncClient, stop: asyncio.Event) -> bool:
        """Keep up to ``bodies_in_flight`` bodies on the wire from acked_through + 1, then settle
        the oldest one; False when there is nothing to send."""
        g = self.group
        multi = self.batches_per_post > 1
        nxt = self._inflight[-1].last + 1 if self._inflight else g.state.acked_through + 1
        while len(self._inflight) < self.bodies_in_flight and nxt <= g.spool.last_seq:
            built = await self._body_from(nxt, multi)
            if built is None:
                if self._inflight:
                    break  # settle what is on the wire first
                await self._backoff(stop, ALARM_GAP, f"spool no longer holds sequence {nxt}; re-protect the group")
                return False
            body, ctype, last, full = built
            if self._inflight and not full:
                # A body behind one on the wire gains no latency by leaving short; it waits for
                # the head's answer and grows meanwhile (fewer, fuller requests: less CPU per MB).
                keep = asyncio.get_running_loop().create_future()
                keep.set_result(built)
                self._prefetch = (nxt, multi, keep)
                break
            if g.spool.last_seq > last:
                # Build (compress, seal) the next body while this one is on the wire and in Kafka.
                self._prefetch = (last + 1, multi, asyncio.ensure_future(asyncio.to_thread(self._build, last + 1, multi)))
            wait = self._ready_at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            start = time.monotonic()
            post = asyncio.ensure_future(client.post(f"/v1/groups/{g.name}/batches", content=body,
                                                     headers={"Content-Type": ctype}))
            if self.bandwidth:
                self._ready_at = max(self._ready_at, start) + len(body) / self.bandwidth
            self._inflight.append(_Sent(nxt, last, len(body), post))
            nxt = last + 1
        if not self._inflight:
            return False
        sent = self._inflight.popleft()
        first, last = sent.first, sent.last
        try:
            resp = await sent.post
        except httpx.TransportError as err:
            await self._drop_inflight()
            await self._backoff(stop, ALARM_SHIP, f"cannot reach ingest at {self.ingest_url}: {err}; writes keep spooling")
            return True
        if resp.status_code != 200:
            await self._drop_inflight()  # the bodies behind it continue it: they cannot land either
        if resp.status_code == 200:
            acked = int(resp.json()["acked_through"])
            if acked > g.spool.last_seq:
                # Ingest holds sequences this spool never numbered: it is deduplicating us
                # against another spool's journal. Trimming now would lose these records.
                await self._drop_inflight()
                await self._backoff(stop, ALARM_INCARNATION, _ahead(acked, g.spool.last_seq))
                return True
            g.alarms.pop(ALARM_INCARNATION, None)
            self.shipped_bytes += sent.size
            self.shipped_batches += 1
            self._ok()
            # In memory now (the next body starts after it); the fsynced state file and the
            # trim follow off the shipping path. A crash before they land only resends records
            # ingest already holds, which it acknowledges again without producing twice.
            g.spool.mark_acked(acked)
            if self._bridge is not None and acked >= self._bridge[1]:
                self._bridge = None  # bridged; the resync goes on in agent.sync
            self._persist_soon()
            return True
        if resp.status_code == 409 and _reason(resp) == "incarnation":
            await self._backoff(stop, ALARM_INCARNATION, f"ingest refused this spool: {_detail(resp)}; "
                                                         "writes keep spooling, nothing is trimmed")
            return True
        if resp.status_code == 409:
            return await self._resend_from(resp, stop)
        if resp.status_code == 415 and multi:
            log.warning("group %s: ingest does not take multi-batch bodies (HTTP 415); sending one batch "
                        "per request from now on", g.name)
            self.batches_per_post = 1
            return True
        if resp.status_code >= 500 or resp.status_code == 429:
            await self._backoff(stop, ALARM_SHIP, f"ingest unavailable (HTTP {resp.status_code}); writes keep "
                                "spooling", at_least=retry_after(resp))
            return True
        if await self._refused(resp, stop, f"batch {first}-{last}"):
            return True
        await self._backoff(stop, ALARM_SHIP,
                            f"ingest rejected batch {first}-{last}: HTTP {resp.status_code} {resp.text[:300]}")
        return True

    async def _drop_inflight(self) -> None:
        """Cancel the bodies still on the wire (ingest finishes or refuses them on its side; a
        body it did take is acknowledged again when resent, never produced twice)."""
        sent, self._inflight = list(self._inflight), collections.deque()
        for s_ in sent:
            s_.post.cancel()
        if sent:
            await asyncio.gather(*(s_.post for s_ in sent), return_exceptions=True)

    async def _body_from(self, first: int, multi: bool) -> tuple[bytes, str, int, bool] | None:
        """The body from ``first``: the prefetched one when it starts there, else built now.

        A prefetched body is only ever used when ``first`` is acked_through + 1 again; spooled
        records never change, so a body built earlier for the same first sequence holds the same
        records. It is dropped when it is not full while more records were spooled since (a
        small prefetch must not keep every other body small).
        """
        pf, self._prefetch = self._prefetch, None
        if pf is not None:
            pf_first, pf_multi, fut = pf
            try:
                built = await fut
            except Exception:  # noqa: BLE001 - rebuilt below, where a real error surfaces again
                built = None
            if (built is not None and pf_first == first and pf_multi == multi
                    and (built[3] or built[2] >= self.group.spool.last_seq)):
                return built
        return await asyncio.to_thread(self._build, first, multi)

    def _build(self, first: int, multi: bool) -> tuple[bytes, str, int, bool] | None:
        """(body, content type, last sequence, full) from ``first`` on, or None if the spool lost ``first``.

        ``full``: as many batches as a body may hold (the last one may be short of 1 MiB).
        """
        avail = self.group.spool.first_available()
        if first < avail:
            return self._build_bridge(first, avail - 1, multi)
        n = self.batches_per_post if multi else 1
        if self.bandwidth:  # a body holds about a second's worth at most, so pacing stays smooth
            n = max(1, min(n, self.bandwidth // MAX_BATCH_BYTES))
        built = batch_parts(self.group, first, n)
        if built is None:
            return None
        batches, last = built
        body, ctype = make_body(self.sealing, self.group.name, first, last, batches, multi)
        return body, ctype, last, len(batches) == n

    def _build_bridge(self, first: int, end: int, multi: bool) -> tuple[bytes, str, int, bool]:
        """The body of no-op records first.. toward ``end``; the first time, the full resync starts."""
        g = self.group
        if self._bridge is None or self._bridge[1] != end or not self._bridge[0] <= first:
            self._bridge = (first, end)
            g.request_full_resync(f"ingest expects sequence {first} but the spool starts at {end + 1}: those "
                                  "writes are gone from this agent")
        ts = g.spool.timestamp_of(end + 1) or g.state.last_ts
        batch, last = bridge_batch(g.bookmark_volume, first, end, self._bridge[0], ts)
        body, ctype = make_body(self.sealing, g.name, first, last, [[batch]], multi)
        return body, ctype, last, True

    async def _resend_from(self, resp: httpx.Response, stop: asyncio.Event) -> bool:
        g = self.group
        try:
            expected = int(resp.json()["expected"])
        except (ValueError, KeyError, TypeError):
            await self._backoff(stop, ALARM_SHIP, f"ingest answered 409 without 'expected': {resp.text[:300]}")
            return True
        if expected > g.spool.last_seq + 1:
            await self._backoff(stop, ALARM_GAP, f"ingest expects sequence {expected} but this agent only "
                                                 f"numbered up to {g.spool.last_seq}; the spool was lost or reset")
            return True
        if expected - 1 > g.state.acked_through:  # ingest already holds more than we knew
            await asyncio.to_thread(g.spool.ack, expected - 1)
            return True
        # ingest is behind our acked_through (its state was reset, or retention lost records and
        # asked for them): resend from there; what the spool no longer holds is bridged (_build).
        g.state.acked_through = expected - 1
        log.warning("group %s: ingest expects %d, resending from there%s", g.name, expected,
                    "" if expected >= g.spool.first_available() else
                    f" (the spool starts at {g.spool.first_available()}: bridge and full resync)")
        return True
