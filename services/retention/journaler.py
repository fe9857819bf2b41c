"""Per-group buffering of write records into journal segments (no Kafka here).

Contract:

* :meth:`Journaler.offer` takes one Kafka message (a v1 batch for one group)
  and an opaque ack token. Records with a sequence at or below what the
  group already holds (timeline + buffer) are dropped: redelivery and
  duplicates are harmless. A record beyond the next expected sequence is a
  gap: the batch is refused, logged and counted, nothing of it is kept.
* A group's buffer is flushed (segment PUT, then timeline entry PUT) by
  :meth:`Journaler.flush`; the tokens it returns belong to messages whose
  records are now durable, and only those may be acknowledged to Kafka.
* One caller at a time per group (the async layer holds a lock per group);
  different groups may flush concurrently from threads.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable

from shared.frames import FrameError, Record, decode_batch
from shared.journal import Bookmark, TimelineEntry, bookmarks_of, compress_record, last_sequence, pack_batches, put_segment
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
    # Messages accepted unchanged keep their original bytes (no re-encode).
    parts: list[bytes | list[Record]] = field(default_factory=list)
    nbytes: int = 0
    opened: float = 0.0
    tokens: list[Any] = field(default_factory=list)


GroupId = tuple[str, str]  # (tenant, group)


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
            log.error("group %s/%s: sequence gap, expected %d, message carries %d..%d; refused (nothing kept). "
                      "The agent must resend from %d through ingest", tenant, group, expected, seqs[0], seqs[-1],
                      expected)
            return Outcome.GAP
        buf = self._buffers.get(gid)
        if buf is None:
            buf = self._buffers[gid] = _Buffer(opened=self.clock())
        buf.records.extend(fresh)
        if len(fresh) == len(records) and not self.compress:
            buf.parts.append(bytes(value))
        else:
            buf.parts.append(fresh)
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
        gid = (tenant, group)
        buf = self._buffers.get(gid)
        if buf is None or not buf.records:
            return None, []
        batches: list[bytes] = []
        for part in buf.parts:
            if isinstance(part, bytes):
                batches.append(part)
            else:
                recs = [compress_record(r) for r in part] if self.compress else part
                batches.extend(pack_batches(recs))
        bookmarks: list[Bookmark] = bookmarks_of(buf.records)
        entry = put_segment(self.store, self.bucket(tenant), group, batches, buf.records[0], buf.records[-1],
                            bookmarks)
        if self._buffers.get(gid) is buf:  # not forgotten (partition revoked) meanwhile
            del self._buffers[gid]
            self._held[gid] = entry.last_seq + 1
        self.stats["segments"] += 1
        self.stats["bytes"] += entry.size
        return entry, buf.tokens

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
