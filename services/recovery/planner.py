"""Recovery planning: which points exist, and which segments rebuild one.

A request is checked in two steps, both before any byte of an image is read
or written: :meth:`At.of` checks its shape without I/O; :func:`load_group` +
:meth:`GroupJournal.resolve` read only the manifest and the timeline (and, for
a timestamp inside a segment, that segment) to pin the point.

The timeline may hold overlapping entries (two writers during a rebalance,
or a crash between segment and entry): the chain takes entries in order of
first sequence, skips what is already covered and stops at the first hole,
so the latest recoverable sequence is the end of the gap-free prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.journal import INITIAL_SYNC_BOOKMARK, Bookmark, TimelineEntry, iter_segment_records, read_manifest, \
    read_timeline
from shared.objectstore import ObjectStore
from services.recovery.errors import BadRequest, NotFound, OutOfRange


@dataclass(frozen=True)
class At:
    """Exactly one of sequence / timestamp_ns / bookmark."""

    sequence: int | None = None
    timestamp_ns: int | None = None
    bookmark: str | None = None

    @classmethod
    def of(cls, sequence: int | None = None, timestamp_ns: int | None = None, bookmark: str | None = None) -> "At":
        given = [n for n, v in (("sequence", sequence), ("timestamp_ns", timestamp_ns), ("bookmark", bookmark))
                 if v is not None]
        if len(given) != 1:
            raise BadRequest(f"give exactly one of sequence, timestamp_ns or bookmark (got {given or 'none'})")
        if sequence is not None and (not isinstance(sequence, int) or sequence < 1):
            raise BadRequest(f"sequence must be a positive integer, got {sequence!r}")
        if timestamp_ns is not None and (not isinstance(timestamp_ns, int) or timestamp_ns < 0):
            raise BadRequest(f"timestamp_ns must be a non-negative integer (ns since the epoch), got {timestamp_ns!r}")
        if bookmark is not None and (not isinstance(bookmark, str) or not bookmark or len(bookmark) > 255):
            raise BadRequest("bookmark must be a non-empty name of at most 255 characters")
        return cls(sequence, timestamp_ns, bookmark)

    def describe(self) -> str:
        if self.sequence is not None:
            return f"sequence {self.sequence}"
        if self.timestamp_ns is not None:
            return f"timestamp {self.timestamp_ns} ns"
        return f"bookmark {self.bookmark!r}"


@dataclass(frozen=True)
class Point:
    sequence: int
    timestamp_ns: int


def chain(entries: list[TimelineEntry]) -> list[TimelineEntry]:
    """The gap-free run of entries from sequence 1 (overlaps kept, covered ones dropped)."""
    out: list[TimelineEntry] = []
    covered = 0
    for e in sorted(entries, key=lambda e: (e.first_seq, -e.last_seq)):
        if e.last_seq <= covered:
            continue
        if e.first_seq > covered + 1:
            break
        out.append(e)
        covered = e.last_seq
    return out


@dataclass
class GroupJournal:
    bucket: str
    group: str
    volumes: dict[str, int]
    entries: list[TimelineEntry]

    @property
    def bookmarks(self) -> list[Bookmark]:
        seen: dict[int, Bookmark] = {}
        for e in self.entries:
            for b in e.bookmarks:
                seen[b.sequence] = b
        return [seen[s] for s in sorted(seen)]

    @property
    def latest(self) -> Point | None:
        if not self.entries:
            return None
        e = self.entries[-1]
        return Point(e.last_seq, e.last_ts)

    @property
    def earliest(self) -> Point | None:
        for b in self.bookmarks:
            if b.name == INITIAL_SYNC_BOOKMARK:
                return Point(b.sequence, b.timestamp_ns)
        return None

    def check_volumes(self, volume: str | None) -> list[str]:
        """The volumes a request names (None or "all" = the whole consistency group)."""
        if volume in (None, "all"):
            return sorted(self.volumes)
        if volume not in self.volumes:
            raise NotFound(f"volume {volume!r} is not in group {self.group!r} "
                           f"(its volumes: {', '.join(sorted(self.volumes))})")
        return [volume]

    def resolve(self, at: At, store: ObjectStore) -> Point:
        """The point ``at`` names, checked to be within [earliest, latest]."""
        earliest, latest = self.earliest, self.latest
        if at.bookmark is not None:
            matches = [b for b in self.bookmarks if b.name == at.bookmark]
            if not matches:
                raise NotFound(f"group {self.group!r} has no bookmark {at.bookmark!r}; "
                               "list them with GET /v1/groups/{group}/points")
            point = Point(matches[-1].sequence, matches[-1].timestamp_ns)  # a reused name means its latest use
        elif at.sequence is not None:
            point = Point(at.sequence, -1)
        else:
            point = Point(-1, at.timestamp_ns)
        if earliest is None or latest is None:
            raise OutOfRange(f"group {self.group!r} has no recoverable point yet: the initial sync has not "
                             f"completed (no {INITIAL_SYNC_BOOKMARK!r} bookmark retained); retry later")
        if at.timestamp_ns is not None:
            if not earliest.timestamp_ns <= at.timestamp_ns <= latest.timestamp_ns:
                raise OutOfRange(f"timestamp {at.timestamp_ns} ns is outside the recoverable range "
                                 f"[{earliest.timestamp_ns}, {latest.timestamp_ns}] ns of group {self.group!r}")
            return self._at_time(at.timestamp_ns, store)
        if not earliest.sequence <= point.sequence <= latest.sequence:
            raise OutOfRange(f"{at.describe()} (sequence {point.sequence}) is outside the recoverable range "
                             f"[{earliest.sequence}, {latest.sequence}] of group {self.group!r}")
        if point.timestamp_ns < 0:
            point = Point(point.sequence, self._ts_of(point.sequence, store))
        return point

    def entries_through(self, sequence: int) -> list[TimelineEntry]:
        return [e for e in self.entries if e.first_seq <= sequence]

    def _at_time(self, t: int, store: ObjectStore) -> Point:
        candidates = [e for e in self.entries if e.first_ts <= t]
        e = candidates[-1]  # exists: t >= earliest ts >= first entry's first_ts
        if e.last_ts <= t:
            return Point(e.last_seq, e.last_ts)
        best = None
        for r in iter_segment_records(store.get(self.bucket, e.segment), e.segment):
            if r.timestamp_ns > t:
                break
            best = Point(r.sequence, r.timestamp_ns)
        assert best is not None  # first_ts <= t
        return best

    def _ts_of(self, sequence: int, store: ObjectStore) -> int:
        for e in self.entries:
            if e.first_seq <= sequence <= e.last_seq:
                if sequence == e.last_seq:
                    return e.last_ts
                if sequence == e.first_seq:
                    return e.first_ts
                for b in e.bookmarks:
                    if b.sequence == sequence:
                        return b.timestamp_ns
                for r in iter_segment_records(store.get(self.bucket, e.segment), e.segment):
                    if r.sequence == sequence:
                        return r.timestamp_ns
        raise OutOfRange(f"sequence {sequence} is not retained")  # unreachable after the range check


def load_group(store: ObjectStore, bucket: str, group: str) -> GroupJournal:
    """Manifest + timeline of a group; NotFound when the tenant has no such group."""
    if not store.bucket_exists(bucket):
        raise NotFound(f"group {group!r} not found")
    volumes = read_manifest(store, bucket, group)
    if volumes is None:
        raise NotFound(f"group {group!r} not found (no manifest: is it registered with ingest?)")
    return GroupJournal(bucket, group, volumes, chain(read_timeline(store, bucket, group)))
