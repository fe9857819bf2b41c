"""Recovery planning: which points exist, and which segments rebuild one.

A request is checked in two steps, both before any byte of an image is read
or written: :meth:`At.of` checks its shape without I/O; :func:`load_group` +
:meth:`GroupJournal.resolve` read only the manifest and the timeline (and, for
a timestamp inside a segment, that segment) to pin the point.

The timeline may hold overlapping entries (two writers during a rebalance,
or a crash between segment and entry): the chain takes entries in order of
first sequence, skips what is already covered and stops at the first hole,
so the latest recoverable sequence is the end of the gap-free prefix.

Bases (docs/storage.md): after GC the journal no longer starts at sequence 1.
The *any-point window* then starts at the floor base (the oldest base from
which the journal is gap-free up to the latest point); every point in
[window start, latest] is recoverable from the newest base at or before it
plus the journal. Older points are recoverable only where the retention
policy kept a base: exactly at a base's sequence or at one of its retained
instants (``points_ns``). Any other older point is refused (422) with the
nearest retained points named.

Inconsistency windows (shared/consistency.py): a retained point strictly
inside the initial sync or a resync after a spool overflow matched no real
disk; it is refused (409) with the nearest consistent points named, and
"latest" means :attr:`GroupJournal.latest_consistent`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from shared import bases as B
from shared import consistency
from shared.journal import INITIAL_SYNC_BOOKMARK, Bookmark, TimelineEntry, chain_from, iter_segment_records, \
    TimelineCache, read_manifest, read_timeline
from shared.objectstore import ObjectStore
from services.recovery.errors import BadRequest, NotFound, OutOfRange
from services.recovery.listing import TimelineListing
from services.recovery import windows as W


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
    base_seqs: list[int] = field(default_factory=list)
    floor: B.Base | None = None  # where the journal starts when GC removed its beginning
    _bases: dict[int, B.Base] = field(default_factory=dict, repr=False)
    _store: object = field(default=None, repr=False)

    def base(self, seq: int) -> B.Base:
        if seq not in self._bases:
            self._bases[seq] = B.read_base(self._store, self.bucket, self.group, seq)
        return self._bases[seq]

    def all_bases(self) -> list[B.Base]:
        """Every base (documents read in parallel, cached); one removed meanwhile is skipped."""
        missing = [s for s in self.base_seqs if s not in self._bases]

        def fetch(s: int) -> B.Base | None:
            try:
                return B.read_base(self._store, self.bucket, self.group, s)
            except B.ObjectNotFound:
                return None

        with ThreadPoolExecutor(max_workers=8) as pool:
            for b in pool.map(fetch, missing):
                if b is not None:
                    self._bases[b.sequence] = b
        return [self._bases[s] for s in self.base_seqs if s in self._bases]

    def retained(self) -> list[B.Base]:
        """Bases outside the any-point window that stand for retained points."""
        start = self.earliest
        return [b for b in self.all_bases() if b.points_ns and (start is None or b.sequence < start.sequence)]

    def base_for(self, point: Point) -> B.Base | None:
        """The base a recovery of ``point`` starts from: the newest at or before it (None: journal from 1)."""
        # Before the window only the point's own base will do (resolve checked that it exists).
        lo = self.floor.sequence if self.floor and point.sequence >= self.floor.sequence else 0
        if self.floor is not None and point.sequence < self.floor.sequence:
            lo = point.sequence
        for s in reversed(self.base_seqs):
            if lo <= s <= point.sequence:
                try:
                    return self.base(s)
                except B.ObjectNotFound:
                    continue
        if self.floor is not None:
            raise OutOfRange(f"no base holds sequence {point.sequence} of group {self.group!r} any more; "
                             "list the retained points with GET /v1/groups/{group}/points")
        return None

    def entries_between(self, after: int, through: int) -> list[TimelineEntry]:
        """Entries holding records in (after, through]."""
        return [e for e in self.entries if e.last_seq > after and e.first_seq <= through]

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
    def windows(self) -> list[consistency.Window]:
        """The inconsistency windows the retained markers describe (shared/consistency.py)."""
        return consistency.windows(self.bookmarks)

    @property
    def latest_consistent(self) -> Point | None:
        """What "latest" means: the newest retained point outside every window (None: none yet)."""
        latest, earliest = self.latest, self.earliest
        if latest is None or earliest is None:
            return None
        b = consistency.latest_consistent(self.windows, Bookmark("", latest.sequence, latest.timestamp_ns))
        if b is None or b.sequence < earliest.sequence:
            return None
        return Point(b.sequence, b.timestamp_ns)

    @property
    def earliest(self) -> Point | None:
        """Start of the any-point window (the floor base, or the initial sync when the journal starts at 1)."""
        if self.floor is not None:
            return Point(self.floor.sequence, self.floor.timestamp_ns)
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
        """The point ``at`` names, checked to be within [earliest, latest] and outside every window."""
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
        if self.floor is not None and latest is not None and earliest is not None:
            old = self._before_window(at, point, earliest)
            if old is not None:
                return old
        if earliest is None or latest is None:
            raise OutOfRange(f"group {self.group!r} has no recoverable point yet: the initial sync has not "
                             f"completed (no {INITIAL_SYNC_BOOKMARK!r} bookmark retained); retry later")
        if at.timestamp_ns is not None:
            if not earliest.timestamp_ns <= at.timestamp_ns <= latest.timestamp_ns:
                raise OutOfRange(f"timestamp {at.timestamp_ns} ns is outside the recoverable range "
                                 f"[{earliest.timestamp_ns}, {latest.timestamp_ns}] ns of group {self.group!r}")
            wins = self.windows
            W.check(self.group, wins, at.describe(), timestamp_ns=at.timestamp_ns, earliest_seq=earliest.sequence)
            found = self._at_time(at.timestamp_ns, store, earliest)
            W.check(self.group, wins, f"{at.describe()} (sequence {found.sequence})", sequence=found.sequence,
                    earliest_seq=earliest.sequence)
            return found
        if not earliest.sequence <= point.sequence <= latest.sequence:
            raise OutOfRange(f"{at.describe()} (sequence {point.sequence}) is outside the recoverable range "
                             f"[{earliest.sequence}, {latest.sequence}] of group {self.group!r}")
        what = at.describe() + (f" (sequence {point.sequence})" if at.bookmark is not None else "")
        W.check(self.group, self.windows, what, sequence=point.sequence, earliest_seq=earliest.sequence)
        if point.sequence == earliest.sequence:
            return earliest
        if point.timestamp_ns < 0:
            point = Point(point.sequence, self._ts_of(point.sequence, store))
        return point

    def _before_window(self, at: At, point: Point, earliest: Point) -> Point | None:
        """A point older than the any-point window: a retained base's, or OutOfRange naming the nearest."""
        if at.timestamp_ns is not None:
            if at.timestamp_ns >= earliest.timestamp_ns:
                return None
            hit = [b for b in self.retained() if at.timestamp_ns in b.points_ns]
            what = f"timestamp {at.timestamp_ns} ns"
        else:
            if point.sequence >= earliest.sequence:
                return None
            hit = [b for b in self.retained() if b.sequence == point.sequence]
            what = at.describe() + (f" (sequence {point.sequence})" if at.bookmark is not None else "")
        if hit:
            return Point(hit[0].sequence, at.timestamp_ns if at.timestamp_ns is not None else hit[0].timestamp_ns)
        raise OutOfRange(self._gone_message(what, at, point, earliest))

    def _gone_message(self, what: str, at: At, point: Point, earliest: Point) -> str:
        pts = sorted((t, b.sequence) for b in self.retained() for t in b.points_ns)
        key = (lambda p: p[0]) if at.timestamp_ns is not None else (lambda p: p[1])
        want = at.timestamp_ns if at.timestamp_ns is not None else point.sequence
        before = [p for p in pts if key(p) < want]
        after = [p for p in pts if key(p) > want]
        near = []
        if before:
            near.append(f"before it: timestamp {before[-1][0]} ns (sequence {before[-1][1]})")
        if after:
            near.append(f"after it: timestamp {after[0][0]} ns (sequence {after[0][1]})")
        near.append(f"any point from sequence {earliest.sequence} (timestamp {earliest.timestamp_ns} ns) on")
        return (f"{what} is no longer retained in group {self.group!r}: it is older than the any-point window "
                f"and not a retained hourly/daily point under the group's retention policy. Nearest retained "
                f"points: {'; '.join(near)}. List them with GET /v1/groups/{self.group}/points")

    def entries_through(self, sequence: int) -> list[TimelineEntry]:
        return [e for e in self.entries if e.first_seq <= sequence]

    def _at_time(self, t: int, store: ObjectStore, earliest: Point) -> Point:
        candidates = [e for e in self.entries if e.first_ts <= t and e.last_seq > earliest.sequence]
        if not candidates:
            return earliest  # before the first write after the window's start
        e = candidates[-1]
        if e.last_ts <= t:
            return Point(e.last_seq, e.last_ts)
        best = earliest
        for r in iter_segment_records(store.get(self.bucket, e.segment), e.segment):
            if r.timestamp_ns > t:
                break
            if r.sequence >= earliest.sequence:
                best = Point(r.sequence, r.timestamp_ns)
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


def load_group(store: ObjectStore, bucket: str, group: str, cache: TimelineCache | None = None,
               listing: TimelineListing | None = None) -> GroupJournal:
    """Manifest + timeline of a group; NotFound when the tenant has no such group.

    ``cache``: timeline entries read before (shared.journal.TimelineCache), so only new ones are fetched.
    ``listing``: list the timeline incrementally (services.recovery.listing; for ``points``, never
    for a plan, which must see exactly what GC left).
    """
    if not store.bucket_exists(bucket):
        raise NotFound(f"group {group!r} not found")
    volumes = read_manifest(store, bucket, group)
    if volumes is None:
        raise NotFound(f"group {group!r} not found (no manifest: is it registered with ingest?)")
    infos = listing.infos(store, bucket, group) if listing is not None else None
    entries = read_timeline(store, bucket, group, cache=cache, infos=infos)
    base_seqs = B.list_base_sequences(store, bucket, group)
    run = chain(entries)
    j = GroupJournal(bucket, group, volumes, run, base_seqs, _store=store)
    if entries and (not run or run[0].first_seq > 1):
        # GC removed the journal's beginning: the window starts at the oldest base the journal continues from.
        run = chain_from(entries)
        start, end = run[0].first_seq - 1, run[-1].last_seq
        for s in base_seqs:
            if start <= s <= end:
                try:
                    j.floor = j.base(s)
                    break
                except B.ObjectNotFound:
                    continue
        j.entries = run if j.floor is not None else []
    return j
