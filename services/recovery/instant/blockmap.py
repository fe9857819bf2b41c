"""Block map of one volume at one point: base-aware, built from the journal since the base only.

The state at point P is the newest base at or before P plus the journal
records in (base.sequence, P]. ``build`` fetches only those segments, checks
their CRCs and the gap-free sequence run, and walks them newest first with
the Coverage rule synth.py uses: each byte a record claims maps to where
that record's payload sits inside its segment object, so a later read can
``get_range`` just that payload. Bytes no record claims read from the base
(its chunk list is already in memory) or as zeroes without a base.
"""

from __future__ import annotations

import bisect
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from services.recovery.coverage import Coverage
from services.recovery.planner import GroupJournal, Point
from shared.bases import Base
from shared.frames import HEADER_SIZE, Codec, Kind, Record, decode_batch, record_size
from shared.journal import JournalError, iter_segment_batches
from shared.frames import FrameError

_LEN_PREFIX = 4


@dataclass(frozen=True, slots=True)
class Extent:
    """Device bytes [start, end) come from one record's payload (``segment`` None: base or zeroes)."""

    start: int
    end: int
    segment: str | None
    pos: int = 0          # byte position of the stored payload inside the segment object
    stored: int = 0       # stored payload length
    codec: int = 0
    rec_offset: int = 0   # device offset of the record's first byte
    rec_length: int = 0


@dataclass
class BlockMap:
    volume: str
    size: int
    extents: list[Extent]     # journal extents only, sorted, disjoint
    base: Base | None = None  # what the gaps read from (None: zeroes)
    segments: int = 0         # segments read to build the map
    segment_bytes: int = 0

    def __post_init__(self) -> None:
        self.extents.sort(key=lambda e: e.start)
        self.starts = [e.start for e in self.extents]

    def lookup(self, offset: int, length: int) -> list[Extent]:
        """The range split into journal extents and gaps (``segment`` None), in order, clipped."""
        end = offset + length
        i = max(0, bisect.bisect_right(self.starts, offset) - 1)
        out, pos = [], offset
        while i < len(self.extents) and self.extents[i].start < end:
            e = self.extents[i]
            i += 1
            if e.end <= pos:
                continue
            if e.start > pos:
                out.append(Extent(pos, e.start, None))
            out.append(e)
            pos = e.end
        if pos < end:
            out.append(Extent(pos, end, None))
        return out


def scan_segment(buf: bytes, where: str) -> list[tuple[Record, int]]:
    """Every record of a segment (CRC-checked) with the byte position of its payload in the segment."""
    out, pos = [], 0
    for batch in iter_segment_batches(buf, where):
        start = pos + _LEN_PREFIX
        pos = start + len(batch)
        try:
            records = decode_batch(batch)
        except FrameError as err:
            raise JournalError(f"{where}: {err}") from err
        rpos = start + HEADER_SIZE
        for rec in records:
            n = record_size(rec)
            out.append((rec, rpos + n - len(rec.payload)))
            rpos += n
    return out


def build(store, journal: GroupJournal, point: Point, volume: str, base: Base | None = None,
          workers: int = 8) -> BlockMap:
    """Map ``volume`` at ``point`` (both validated by the planner, ``base`` = plan.base)."""
    size = journal.volumes[volume]
    floor = base.sequence if base is not None else 0
    if base is not None and (volume not in base.volumes or base.volumes[volume].size != size):
        raise JournalError(f"base {base.key} does not hold volume {volume!r} at {size} bytes; "
                           "rerun the retention job")
    entries = journal.entries_between(floor, point.sequence)

    def fetch(key: str) -> tuple[list[tuple[Record, int]], int]:
        body = store.get(journal.bucket, key)
        return scan_segment(body, key), len(body)

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(entries)))) as pool:
        scanned = list(pool.map(fetch, [e.segment for e in entries]))
    bmap = BlockMap(volume, size, [], base)
    cover, expected = Coverage(), point.sequence
    for e, (records, nbytes) in zip(reversed(entries), reversed(scanned)):
        bmap.segments += 1
        bmap.segment_bytes += nbytes
        for rec, pos in reversed(records):
            if rec.sequence > expected or rec.sequence <= floor:
                continue  # after the point, or already seen in an overlapping newer entry
            if rec.sequence != expected:
                raise JournalError(f"{e.segment}: expected sequence {expected}, found {rec.sequence}")
            expected -= 1
            if rec.volume != volume or rec.kind == Kind.BOOKMARK:
                continue
            if rec.offset + rec.length > size:
                raise JournalError(f"{e.segment}: record {rec.sequence} writes past the end of {volume}")
            for a, b in cover.claim(rec.offset, rec.offset + rec.length):
                if rec.kind == Kind.DATA:
                    bmap.extents.append(Extent(a, b, e.segment, pos, len(rec.payload), int(rec.codec),
                                               rec.offset, rec.length))
                else:  # ZEROES / TRIM hide the base: a journal extent reading zeroes
                    bmap.extents.append(Extent(a, b, "", 0, 0, int(Codec.RAW), a, 0))
    if expected != floor:
        raise JournalError(f"journal of group {journal.group!r} is missing sequences {floor + 1}..{expected} "
                           f"needed for sequence {point.sequence}")
    bmap.__post_init__()
    return bmap
