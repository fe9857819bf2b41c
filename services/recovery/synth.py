"""Image synthesis: apply a group's journal up to a point onto sparse images.

One pass over the segments (newest first) rebuilds every requested volume
of the group at the same sequence (a consistency group is recovered at one point). Segments
are fetched by a small thread pool a few ahead of the one being applied, so
memory stays bounded at about ``prefetch`` segments while the network and
the disk overlap.

With a base (docs/storage.md) only the journal after the base is applied;
then every byte no record wrote is filled from the base's chunks, fetched
by the same pool. The cost is bounded by the base interval, not by the
journal's age.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from services.recovery import sparse
from services.recovery.coverage import Coverage
from services.recovery.planner import GroupJournal, Point
from shared import bases as B
from shared.frames import Codec, Kind
from shared.inflate import inflate
from shared.journal import JournalError, iter_segment_records
from shared.objectstore import ObjectStore


@dataclass
class SynthStats:
    segments: int = 0
    segment_bytes: int = 0
    records_applied: int = 0
    data_bytes: int = 0
    base_chunks: int = 0


Progress = Callable[[int, int], None]  # (segment bytes done, segment bytes total)


def synthesize(store: ObjectStore, journal: GroupJournal, point: Point, outputs: dict[str, Path],
               prefetch: int = 4, progress: Progress | None = None, base: B.Base | None = None) -> SynthStats:
    """Write each volume of ``outputs`` (volume -> path) as it was at ``point``.

    The caller validated ``point`` and the volumes (planner) before calling.
    Segments are applied newest first and only bytes no newer record wrote
    are written (see :mod:`coverage`): overwritten data is neither
    decompressed nor written, and zeroes/trims cost nothing on a fresh sparse
    image. Every sequence from ``point`` down to the base's (or 1) must be
    seen exactly once; otherwise JournalError: an image is never returned
    silently incomplete.
    """
    floor = base.sequence if base is not None else 0
    entries = list(reversed(journal.entries_between(floor, point.sequence)))
    total = sum(e.size for e in entries)
    fds = {v: sparse.create(p, journal.volumes[v]) for v, p in outputs.items()}
    covers = {v: Coverage() for v in outputs}
    stats = SynthStats()
    expected = point.sequence  # the next (lower) sequence to apply
    try:
        with ThreadPoolExecutor(max_workers=max(1, prefetch)) as pool:
            futures: list[Future] = []
            nxt = 0

            def fill() -> None:
                nonlocal nxt
                while nxt < len(entries) and len(futures) < prefetch:
                    futures.append(pool.submit(_fetch, store, journal.bucket, entries[nxt].segment))
                    nxt += 1

            fill()
            while futures:
                e = entries[stats.segments]
                records = futures.pop(0).result()
                fill()
                for rec in reversed(records):
                    seq = rec.sequence
                    if seq > expected or seq <= floor:
                        continue  # after the point, or already applied from an overlapping newer entry
                    if seq != expected:
                        raise JournalError(f"{e.segment}: expected sequence {expected}, found {seq}")
                    expected -= 1
                    fd = fds.get(rec.volume)
                    if fd is None or rec.kind == Kind.BOOKMARK:
                        continue
                    size = journal.volumes[rec.volume]
                    if rec.offset + rec.length > size:
                        raise JournalError(f"{e.segment}: record {seq} writes {rec.offset}+{rec.length} "
                                           f"past the end of {rec.volume} ({size} bytes)")
                    free = covers[rec.volume].claim(rec.offset, rec.offset + rec.length)
                    stats.records_applied += 1
                    if not free or rec.kind != Kind.DATA:
                        continue  # the image starts as zeroes: ZEROES/TRIM need no I/O
                    data = _payload(rec, e.segment)
                    for a, b in free:
                        os.pwrite(fd, data[a - rec.offset: b - rec.offset], a)
                        stats.data_bytes += b - a
                stats.segments += 1
                stats.segment_bytes += e.size
                if progress:
                    progress(stats.segment_bytes, total)
            if expected != floor:
                raise JournalError(f"journal of group {journal.group!r} is missing sequences {floor + 1}.."
                                   f"{expected} needed for sequence {point.sequence}")
            if base is not None:
                _fill_from_base(store, journal, base, fds, covers, pool, prefetch, stats)
    finally:
        for fd in fds.values():
            os.close(fd)
    return stats


def _fill_from_base(store: ObjectStore, journal: GroupJournal, base: B.Base, fds: dict[str, int],
                    covers: dict[str, Coverage], pool: ThreadPoolExecutor, prefetch: int, stats: SynthStats) -> None:
    """Write every byte no journal record claimed from the base's chunks (zero chunks cost nothing)."""
    work = []
    for v in fds:
        vc = base.volumes.get(v)
        if vc is None or vc.size != journal.volumes[v]:
            raise JournalError(f"base {base.key} does not hold volume {v!r} at its size; rerun the retention job")
        for i, cid in enumerate(vc.chunks):
            if cid is None:
                continue
            start = i * base.chunk_size
            free = covers[v].claim(start, min(start + base.chunk_size, vc.size))
            if free:
                work.append((v, i, start, free))
    window = max(2, prefetch * 2)
    futures: list[tuple[tuple, Future]] = []
    pos = 0
    while pos < len(work) or futures:
        while pos < len(work) and len(futures) < window:
            v, i = work[pos][0], work[pos][1]
            futures.append((work[pos], pool.submit(B.read_volume_chunk, store, journal.bucket, base, v, i)))
            pos += 1
        (v, _i, start, free), fut = futures.pop(0)
        data = fut.result()
        for a, b in free:
            os.pwrite(fds[v], data[a - start: b - start], a)
            stats.data_bytes += b - a
        stats.base_chunks += 1


def _fetch(store: ObjectStore, bucket: str, key: str) -> list:
    # Fetch and CRC-check in the pool: crc32c and the socket reads release
    # the GIL, so this overlaps with applying the previous segment.
    return list(iter_segment_records(store.get(bucket, key), key))


def _payload(rec, where: str) -> memoryview:
    """A DATA record's bytes; JournalError when its zstd payload does not inflate to exactly its length."""
    if rec.codec != Codec.ZSTD:
        return memoryview(rec.payload)
    data = inflate(rec.payload, rec.length, JournalError, f"{where}: record {rec.sequence}")
    if len(data) != rec.length:
        raise JournalError(f"{where}: record {rec.sequence} decompresses to {len(data)} bytes, "
                           f"header says {rec.length}")
    return memoryview(data)
