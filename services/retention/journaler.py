"""Per-group buffering of write records into journal segments (no Kafka here).

Contract:

* :meth:`Journaler.offer` takes one Kafka message (a v1 batch for one group)
  and an opaque ack token. Records with a sequence at or below what the
  group already holds (timeline + buffer) are dropped: redelivery and
  duplicates are harmless. A record beyond the next expected sequence is a
  gap: the batch is refused, logged and counted, nothing of it is kept;
  :attr:`Journaler.last_gap` then names (expected, first, last) so the
  caller can hold the message back (docs/retention.md "Sequence gaps").
* A group's buffer is flushed (segment PUT, then timeline entry PUT) by
  :meth:`Journaler.flush`; the tokens it returns belong to messages whose
  records are now durable, and only those may be acknowledged to Kafka.
* Or in steps, so uploads overlap reading (docs/retention.md "Pipelined
  uploads"): :meth:`seal` takes the buffer out as a :class:`Sealed` segment
  (buffering goes on behind it), :meth:`write_segment` PUTs its body (any
  order, concurrently) and :meth:`write_entry` its timeline entry - which the
  caller must do strictly in sequence order per group, each only after the
  previous entry is durable, so the timeline never has a gap.
* One caller at a time per group for offer/seal (the async layer holds a
  lock per group); different groups may flush concurrently from threads.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable

from shared.frames import FrameError, Record, decode_batch
from shared.journal import (TimelineEntry, bookmarks_of, compress_record, encode_segment, last_sequence, pack_batches,
                            put_segment_body, put_timeline_entry)
from shared.objectstore import ObjectStore
from shared.tenancy import tenant_bucket

log = logging.getLogger(__name__)


class Outcome(Enum):
    BUFFERED = "buffered"      # the token is held until the group's next flush
    DUPLICATE = "duplicate"    # every record already held: ack at once
    GAP = "gap"                # refused: sequence gap (nothing kept)
    CORRUPT = "corrupt"        # refused: not a valid batch for this group


@dataclass
class _Buffer:
    records: list[Record] = field(default_factory=list)
    # Messages accepted whole keep their original bytes: stored byte for byte
    # unless compression changes one of their records (no re-encode).
    parts: list[tuple[bytes | None, list[Record]]] = field(default_factory=list)
    nbytes: int = 0
    opened: float = 0.0
    tokens: list[Any] = field(default_factory=list)
    body: bytes | None = None  # the encoded segment, once built (then parts are let go)


GroupId = tuple[str, str]  # (tenant, group)


@dataclass
class Sealed:
    """One group's buffer taken out for upload: a future segment first..last."""
    tenant: str
    group: str
    buf: _Buffer
    entry: TimelineEntry | None = None  # set once the segment body is durable
    aborted: bool = False              # partition revoked: write nothing more

    @property
    def tokens(self) -> list[Any]:
        return self.buf.tokens

    @property
    def first_seq(self) -> int:
        return self.buf.records[0].sequence

    @property
    def last_seq(self) -> int:
        return self.buf.records[-1].sequence


class Journaler:
    def __init__(self, store: ObjectStore, bucket_prefix: str = "dialback-", max_bytes: int = 8 << 20,
                 max_age: float = 1.0, compress: bool = True, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.bucket_prefix = bucket_prefix
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.compress = compress
        self.clock = clock
        self._next: dict[GroupId, int] = {}      # next expected sequence (timeline + buffer)
        self._held: dict[GroupId, int] = {}      # next sequence after what is durable
        self._buffers: dict[GroupId, _Buffer] = {}
        self._buckets: set[str] = set()
        self.last_gap: tuple[int, int, int] | None = None  # (expected, first, last) of the last GAP outcome
        self.stats = {"records": 0, "duplicates": 0, "gaps": 0, "corrupt": 0, "segments": 0, "bytes": 0}

    def bucket(self, tenant: str) -> str:
        b = tenant_bucket(tenant, self.bucket_prefix)
        if b not in self._buckets:
            self.store.ensure_bucket(b)
            self._buckets.add(b)
        return b

    def next_expected(self, tenant: str, group: str) -> int:
        """Loads (once, then cached) the last timeline sequence of the group: blocking I/O."""
        gid = (tenant, group)
        if gid not in self._next:
            nxt = last_sequence(self.store, self.bucket(tenant), group) + 1
            self._next[gid] = self._held[gid] = nxt
            log.info("group %s/%s: timeline holds through %d", tenant, group, nxt - 1)
        return self._next[gid]

    def needs_load(self, tenant: str, group: str) -> bool:
        return (tenant, group) not in self._next

    def offer(self, tenant: str, group: str, value: bytes, token: Any) -> Outcome:
        """Decode, dedupe and buffer one message. Needs :meth:`next_expected` loaded."""
        gid = (tenant, group)
        try:
            records = decode_batch(value)
        except FrameError as err:
            self.stats["corrupt"] += 1
            log.error("group %s/%s: dropping a message that is not a valid v1 batch (%s); ingest validates "
                      "batches, so check what else writes to this topic", tenant, group, err)
            return Outcome.CORRUPT
        expected = self.next_expected(tenant, group)
        fresh = [r for r in records if r.sequence >= expected]
        if not fresh:
            self.stats["duplicates"] += 1
            return Outcome.DUPLICATE
        seqs = [r.sequence for r in fresh]
        if seqs[0] != expected or seqs != list(range(expected, expected + len(seqs))):
            self.stats["gaps"] += 1
            self.last_gap = (expected, seqs[0], records[-1].sequence)
            log.error("group %s/%s: sequence gap, expected %d, message carries %d..%d; refused (nothing kept). "
                      "The agent must resend from %d through ingest", tenant, group, expected, seqs[0], seqs[-1],
                      expected)
            return Outcome.GAP
        buf = self._buffers.get(gid)
        if buf is None:
            buf = self._buffers[gid] = _Buffer(opened=self.clock())
        buf.records.extend(fresh)
        buf.parts.append((bytes(value) if len(fresh) == len(records) else None, fresh))
        buf.nbytes += len(value)
        buf.tokens.append(token)
        self._next[gid] = seqs[-1] + 1
        self.stats["records"] += len(fresh)
        return Outcome.BUFFERED

    def buffered_bytes(self, tenant: str, group: str) -> int:
        buf = self._buffers.get((tenant, group))
        return buf.nbytes if buf else 0

    def full(self, tenant: str, group: str) -> bool:
        return self.buffered_bytes(tenant, group) >= self.max_bytes

    def due(self, now: float | None = None) -> list[GroupId]:
        """Groups whose buffer is full or older than max_age."""
        now = self.clock() if now is None else now
        return [gid for gid, b in self._buffers.items()
                if b.records and (b.nbytes >= self.max_bytes or now - b.opened >= self.max_age)]

    def oldest_age(self, now: float | None = None) -> float:
        now = self.clock() if now is None else now
        return max((now - b.opened for b in self._buffers.values() if b.records), default=0.0)

    def flush(self, tenant: str, group: str) -> tuple[TimelineEntry | None, list[Any]]:
        """Make the group's buffer durable; returns (entry, tokens now safe to ack).

        On a store error the buffer is kept intact (the error propagates) so a
        later flush retries the very same segment: nothing is acked meanwhile.
        """
        sealed = self.seal(tenant, group)
        if sealed is None:
            return None, []
        try:
            self.write_segment(sealed)
            entry = self.write_entry(sealed)
        except BaseException:
            self.unseal(sealed)
            raise
        return entry, sealed.tokens

    def seal(self, tenant: str, group: str) -> Sealed | None:
        """Take the group's buffer out for upload (None when empty); buffering continues behind it."""
        buf = self._buffers.pop((tenant, group), None)
        if buf is None or not buf.records:
            return None
        return Sealed(tenant, group, buf)

    def unseal(self, sealed: Sealed) -> None:
        """Put a sealed buffer back as the group's buffer (only valid if nothing was buffered since)."""
        gid = (sealed.tenant, sealed.group)
        if gid in self._next and gid not in self._buffers and self._next[gid] == sealed.last_seq + 1:
            buf = sealed.buf
            if buf.body is not None:  # parts were let go: rebuild them from the records, more may follow
                buf.parts, buf.body = [(None, list(buf.records))], None
            self._buffers[gid] = buf

    def encode(self, sealed: Sealed) -> list[bytes]:
        """The segment's batches: original message bytes wherever compression changed nothing."""
        batches: list[bytes] = []
        for raw, recs in sealed.buf.parts:
            if self.compress:
                packed = [compress_record(r) for r in recs]
                if raw is None or any(p is not r for p, r in zip(packed, recs)):
                    batches.extend(pack_batches(packed))
                    continue
            if raw is not None:
                batches.append(raw)
            else:
                batches.extend(pack_batches(recs))
        return batches

    def write_segment(self, sealed: Sealed) -> None:
        """PUT the segment body (blocking; idempotent; safe in any order and concurrently)."""
        if sealed.entry is not None:
            return
        recs = sealed.buf.records
        buf = sealed.buf
        if buf.body is None:
            buf.body = encode_segment(self.encode(sealed))
            buf.parts = []  # the body holds it all now: half the memory while the upload runs
        sealed.entry = put_segment_body(self.store, self.bucket(sealed.tenant), sealed.group, buf.body,
                                        recs[0], recs[-1], bookmarks_of(recs))

    def write_entry(self, sealed: Sealed) -> TimelineEntry:
        """PUT the timeline entry (blocking). Call after write_segment and after the previous entry."""
        assert sealed.entry is not None, "write_segment first"
        put_timeline_entry(self.store, self.bucket(sealed.tenant), sealed.group, sealed.entry)
        gid = (sealed.tenant, sealed.group)
        if gid in self._held:  # not forgotten (partition revoked) meanwhile
            self._held[gid] = sealed.entry.last_seq + 1
        sealed.buf.body = None  # durable: let the bytes go
        self.stats["segments"] += 1
        self.stats["bytes"] += sealed.entry.size
        return sealed.entry

    def forget(self, gids: set[GroupId] | None = None) -> list[Any]:
        """Drop buffers and cached positions (partitions revoked); returns the dropped tokens.

        The dropped messages are not acked, so whoever owns the partition next
        receives them again.
        """
        targets = set(self._buffers) | set(self._next) if gids is None else gids
        dropped: list[Any] = []
        for gid in targets:
            buf = self._buffers.pop(gid, None)
            if buf:
                dropped.extend(buf.tokens)
            self._next.pop(gid, None)
            self._held.pop(gid, None)
        return dropped
