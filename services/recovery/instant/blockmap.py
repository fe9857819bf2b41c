"""Block map of one volume at one point, and a read-only NBD backend over it.

Journal-only for now (shared/bases.py has not landed): the map is built by
walking the journal newest first and claiming, per record, only bytes no
newer record wrote (the same Coverage rule synth.py uses), so every byte
maps to exactly one source: (segment key, record index) or zero.
Reads fetch only the segments the requested range needs, via a small LRU.
"""

from __future__ import annotations

import bisect
import errno
from collections import OrderedDict
from dataclasses import dataclass

from services.recovery.coverage import Coverage
from services.recovery.planner import GroupJournal, Point
from services.recovery.synth import _fetch, _payload
from shared.frames import Kind
import zstandard


@dataclass(frozen=True)
class Extent:
    start: int
    end: int
    segment: str | None  # None: zeroes
    index: int = -1      # record position within the segment
    rec_offset: int = 0  # device offset of the record's first byte


class BlockMap:
    def __init__(self, size: int, extents: list[Extent]):
        self.size = size
        self.extents = sorted(extents, key=lambda e: e.start)
        self.starts = [e.start for e in self.extents]

    def lookup(self, offset: int, length: int) -> list[Extent]:
        i = max(0, bisect.bisect_right(self.starts, offset) - 1)
        out, end = [], offset + length
        while i < len(self.extents) and self.extents[i].start < end:
            e = self.extents[i]
            if e.end > offset:
                out.append(e)
            i += 1
        return out


def build(store, journal: GroupJournal, point: Point, volume: str) -> BlockMap:
    """Map ``volume`` at ``point`` (validated by the planner before any I/O)."""
    cover, extents = Coverage(), []
    for e in reversed(journal.entries_through(point.sequence)):
        records = _fetch(store, journal.bucket, e.segment)
        for idx in range(len(records) - 1, -1, -1):
            rec = records[idx]
            if rec.sequence > point.sequence or rec.volume != volume or rec.kind == Kind.BOOKMARK:
                continue
            for a, b in cover.claim(rec.offset, rec.offset + rec.length):
                if rec.kind == Kind.DATA:
                    extents.append(Extent(a, b, e.segment, idx, rec.offset))
    return BlockMap(journal.volumes[volume], extents)


class PointBackend:
    """NBD ExportBackend (agent/nbd/server.py) reading a BlockMap; read-only."""

    read_only = True

    def __init__(self, store, bucket: str, bmap: BlockMap, name: str = "point", cache_segments: int = 8):
        self.name = name
        self.store, self.bucket, self.map = store, bucket, bmap
        self.size = bmap.size
        self._cache: OrderedDict[str, list] = OrderedDict()
        self._limit = cache_segments
        self._dctx = zstandard.ZstdDecompressor()

    def _records(self, key: str) -> list:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        recs = _fetch(self.store, self.bucket, key)
        self._cache[key] = recs
        while len(self._cache) > self._limit:
            self._cache.popitem(last=False)
        return recs

    def read(self, offset: int, length: int) -> bytes:
        buf = bytearray(length)
        for e in self.map.lookup(offset, length):
            a, b = max(e.start, offset), min(e.end, offset + length)
            rec = self._records(e.segment)[e.index]
            data = _payload(self._dctx, rec, e.segment)
            buf[a - offset:b - offset] = data[a - e.rec_offset:b - e.rec_offset]
        return bytes(buf)

    def write(self, offset: int, data: bytes) -> None:
        raise OSError(errno.EPERM, "read-only export: export it with writable=true for an overlay")

    def trim(self, offset: int, length: int) -> None:
        self.write(offset, b"")

    def zeroes(self, offset: int, length: int, no_hole: bool) -> None:
        self.write(offset, b"")

    def flush(self) -> None:
        pass
