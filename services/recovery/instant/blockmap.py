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
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import crc32c

from services.recovery.coverage import Coverage
from services.recovery.planner import GroupJournal, Point
from shared.bases import Base
from shared.frames import HEADER_SIZE, Codec, Kind, Record, decode_batch, record_size
from shared.journal import JournalError, iter_segment_batches
from shared.frames import FrameError

_LEN_PREFIX = 4
_FIXED = struct.Struct("<QQQIBBI")  # sequence, timestamp, offset, length, kind, codec, payload length
_CRC = struct.Struct("<I")


def record_payload(blob: bytes | memoryview, e: "Extent") -> memoryview:
    """The stored payload of the record ``e`` maps, from its encoding; checks the CRC and that it is that record.

    Range reads skip the segment-level checks, and a segment could in principle be rewritten with another
    layout (two writers during a rebalance): a mismatch is a JournalError (EIO), never wrong bytes.
    """
    mv = memoryview(blob)
    try:
        vlen = mv[0]
        seq, _ts, offset, length, _kind, codec, plen = _FIXED.unpack_from(mv, 1 + vlen)
        fixed_end = 1 + vlen + _FIXED.size
        (crc,) = _CRC.unpack_from(mv, fixed_end)
        payload = mv[fixed_end + _CRC.size: fixed_end + _CRC.size + plen]
    except (IndexError, struct.error) as err:
        raise JournalError(f"{e.segment}: record at {e.pos} is truncated") from err
    if (seq, offset, length, codec) != (e.sequence, e.rec_offset, e.rec_length, e.codec) or len(payload) != plen \
            or crc32c.crc32c(payload, crc32c.crc32c(mv[:fixed_end])) != crc:
        raise JournalError(f"{e.segment}: record at {e.pos} is not record {e.sequence} as mapped (segment "
                           "rewritten or corrupt); close and re-create the export")
    return payload


@dataclass(frozen=True, slots=True)
class Extent:
    """Device bytes [start, end) come from one record's payload (``segment`` None: base or zeroes)."""

    start: int
    end: int
    segment: str | None
    pos: int = 0          # byte position of the encoded record inside the segment object
    stored: int = 0       # encoded record size (header, CRC and payload)
    codec: int = 0
    rec_offset: int = 0   # device offset of the record's first byte
    rec_length: int = 0
    sequence: int = 0


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
    """Every record of a segment (CRC-checked) with the byte position of its encoding in the segment."""
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
            out.append((rec, rpos))
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
                    bmap.extents.append(Extent(a, b, e.segment, pos, record_size(rec), int(rec.codec),
                                               rec.offset, rec.length, rec.sequence))
                else:  # ZEROES / TRIM hide the base: a journal extent reading zeroes
                    bmap.extents.append(Extent(a, b, "", 0, 0, int(Codec.RAW), a, 0))
    if expected != floor:
        raise JournalError(f"journal of group {journal.group!r} is missing sequences {floor + 1}..{expected} "
                           f"needed for sequence {point.sequence}")
    bmap.__post_init__()
    return bmap
