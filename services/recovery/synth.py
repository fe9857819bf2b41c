"""Image synthesis: apply a group's journal up to a point onto sparse images.

One pass over the segments rebuilds every requested volume of the group at
the same sequence (a consistency group is recovered at one point). Segments
are fetched by a small thread pool a few ahead of the one being applied, so
memory stays bounded at about ``prefetch`` segments while the network and
the disk overlap.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import zstandard

from services.recovery import sparse
from services.recovery.planner import GroupJournal, Point
from shared.frames import Codec, Kind
from shared.journal import JournalError, iter_segment_records
from shared.objectstore import ObjectStore


@dataclass
class SynthStats:
    segments: int = 0
    segment_bytes: int = 0
    records_applied: int = 0
    data_bytes: int = 0


Progress = Callable[[int, int], None]  # (segment bytes done, segment bytes total)


def synthesize(store: ObjectStore, journal: GroupJournal, point: Point, outputs: dict[str, Path],
               prefetch: int = 4, progress: Progress | None = None) -> SynthStats:
    """Write each volume of ``outputs`` (volume -> path) as it was at ``point``.

    The caller validated ``point`` and the volumes (planner) before calling.
    Raises JournalError if a segment is missing records or corrupt: an image
    is never returned silently incomplete.
    """
    entries = journal.entries_through(point.sequence)
    total = sum(e.size for e in entries)
    fds = {v: sparse.create(p, journal.volumes[v]) for v, p in outputs.items()}
    stats = SynthStats()
    dctx = zstandard.ZstdDecompressor()
    applied = 0  # highest sequence applied (records of other volumes count too)
    try:
        with ThreadPoolExecutor(max_workers=max(1, prefetch)) as pool:
            futures: list[Future] = []
            nxt = 0

            def fill() -> None:
                nonlocal nxt
                while nxt < len(entries) and len(futures) < prefetch:
                    e = entries[nxt]
                    futures.append(pool.submit(store.get, journal.bucket, e.segment))
                    nxt += 1

            fill()
            while futures:
                e = entries[stats.segments]
                body = futures.pop(0).result()
                fill()
                for rec in iter_segment_records(body, e.segment):
                    seq = rec.sequence
                    if seq <= applied:
                        continue  # overlap with an earlier entry
                    if seq > point.sequence:
                        break
                    if seq != applied + 1:
                        raise JournalError(f"{e.segment}: expected sequence {applied + 1}, found {seq}")
                    applied = seq
                    fd = fds.get(rec.volume)
                    if fd is None or rec.kind == Kind.BOOKMARK:
                        continue
                    size = journal.volumes[rec.volume]
                    if rec.offset + rec.length > size:
                        raise JournalError(f"{e.segment}: record {seq} writes {rec.offset}+{rec.length} "
                                           f"past the end of {rec.volume} ({size} bytes)")
                    if rec.kind == Kind.DATA:
                        if rec.codec == Codec.ZSTD:
                            data = dctx.decompress(rec.payload, max_output_size=rec.length)
                            if len(data) != rec.length:
                                raise JournalError(f"{e.segment}: record {seq} decompresses to {len(data)} "
                                                   f"bytes, header says {rec.length}")
                        else:
                            data = rec.payload
                        os.pwrite(fd, data, rec.offset)
                        stats.data_bytes += rec.length
                    else:  # ZEROES and TRIM both read back as zeroes
                        sparse.zero_range(fd, rec.offset, rec.length)
                    stats.records_applied += 1
                stats.segments += 1
                stats.segment_bytes += e.size
                if progress:
                    progress(stats.segment_bytes, total)
        if applied != point.sequence:
            raise JournalError(f"journal of group {journal.group!r} ends at sequence {applied}, "
                               f"short of the requested {point.sequence}")
    finally:
        for fd in fds.values():
            os.close(fd)
    return stats
