"""Journal segments, timeline entries and manifests in a tenant's bucket.

Written by retention, read by recovery (and the recovery benchmark), so both
agree on one codec. Layout per docs/data-path.md:

* segment ``groups/<g>/journal/<first>-<last>.seg`` = concatenated
  ``u32 little-endian length | v1 batch`` holding records first..last, gap-free,
  ascending;
* timeline entry ``groups/<g>/timeline/<first>-<last>.json``, put only after
  its segment is durable: ``{"first_seq","last_seq","first_ts","last_ts",
  "segment","size","bookmarks":[{"name","sequence","timestamp_ns"}]}``;
* manifest ``groups/<g>/manifest.json`` = ``{"group","volumes":{vol: size}}``.

A timeline entry is the commit point of a segment: a segment without its
entry (a crash between the two puts) is ignored by readers and overwritten or
superseded by the next writer.
"""

from __future__ import annotations

import json
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Iterable, Iterator, Sequence

import cachetools
import zstandard

from shared import keys
from shared.errors import DialbackError
from shared.frames import MAX_BATCH_BYTES, Codec, FrameError, Kind, Record, decode_batch, encode_batch, record_size
from shared.frames import HEADER_SIZE as BATCH_HEADER_SIZE
from shared.objectstore import ObjectInfo, ObjectNotFound, ObjectStore

_LEN = struct.Struct("<I")
INITIAL_SYNC_BOOKMARK = "dialback.initial-sync-complete"


class JournalError(DialbackError):
    """A segment, timeline entry or manifest is malformed; the message names the object."""


@dataclass(frozen=True)
class Bookmark:
    name: str
    sequence: int
    timestamp_ns: int


@dataclass(frozen=True)
class TimelineEntry:
    first_seq: int
    last_seq: int
    first_ts: int
    last_ts: int
    segment: str
    size: int
    bookmarks: tuple[Bookmark, ...] = field(default_factory=tuple)

    def to_json(self) -> bytes:
        doc = asdict(self)
        doc["bookmarks"] = [asdict(b) for b in self.bookmarks]
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes, where: str = "timeline entry") -> "TimelineEntry":
        try:
            doc = json.loads(raw)
            return cls(int(doc["first_seq"]), int(doc["last_seq"]), int(doc["first_ts"]), int(doc["last_ts"]),
                       str(doc["segment"]), int(doc["size"]),
                       tuple(Bookmark(str(b["name"]), int(b["sequence"]), int(b["timestamp_ns"]))
                             for b in doc.get("bookmarks", [])))
        except (ValueError, KeyError, TypeError) as err:
            raise JournalError(f"{where} is not a valid timeline entry: {err!r}") from err


# --- segment codec ---------------------------------------------------------

def encode_segment(batches: Iterable[bytes]) -> bytes:
    return join_segment([b] for b in batches)


def join_segment(batches: Iterable[Sequence[bytes | memoryview]]) -> bytes:
    """``encode_segment`` for batches given as buffer lists (each joined is one batch): one copy in all."""
    parts: list[bytes | memoryview] = []
    for b in batches:
        parts.append(_LEN.pack(sum(len(p) for p in b)))
        parts += b
    return b"".join(parts)


def iter_segment_batches(buf: bytes | memoryview, where: str = "segment") -> Iterator[memoryview]:
    """The batches of a segment, as zero-copy views; raises JournalError on truncation."""
    mv = memoryview(buf)
    pos, end = 0, len(mv)
    while pos < end:
        if pos + _LEN.size > end:
            raise JournalError(f"{where}: truncated length prefix at offset {pos}")
        (n,) = _LEN.unpack_from(mv, pos)
        pos += _LEN.size
        if n < BATCH_HEADER_SIZE or n > MAX_BATCH_BYTES or pos + n > end:
            raise JournalError(f"{where}: batch of {n} bytes at offset {pos} does not fit the segment")
        yield mv[pos: pos + n]
        pos += n


def iter_segment_records(buf: bytes | memoryview, where: str = "segment") -> Iterator[Record]:
    """Every record of a segment, CRC-checked, in stored (ascending sequence) order."""
    for batch in iter_segment_batches(buf, where):
        try:
            yield from decode_batch(batch)
        except FrameError as err:
            raise JournalError(f"{where}: {err}") from err


# --- building segments -----------------------------------------------------

_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    # A compressor context is costly to create and not thread-safe: one per thread and level.
    cache = _local.__dict__.setdefault("zstd", {})
    if level not in cache:
        cache[level] = zstandard.ZstdCompressor(level=level)
    return cache[level]


def compress_record(rec: Record, level: int = 1, min_len: int = 4096, probe: int = 16384) -> Record:
    """Raw DATA payloads re-encoded with zstd when that saves at least 1/8.

    A payload over 4 x ``probe`` bytes is tried on its first ``probe`` bytes
    first: when those do not shrink by 1/8 (random or already compressed
    data) the payload stays raw without compressing it whole (~1 ms/MB saved).
    """
    if rec.kind != Kind.DATA or rec.codec != Codec.RAW or rec.length < min_len:
        return rec
    zc = _compressor(level)
    if probe and rec.length > 4 * probe:
        head = memoryview(rec.payload)[:probe]
        if len(zc.compress(head)) > probe - probe // 8:
            return rec
    packed = zc.compress(rec.payload)
    if len(packed) > rec.length - rec.length // 8:
        return rec
    return Record(rec.volume, rec.sequence, rec.timestamp_ns, rec.offset, rec.length, rec.kind, Codec.ZSTD, packed)


def pack_batches(records: Sequence[Record], limit: int = MAX_BATCH_BYTES) -> list[bytes]:
    """Records (already in order) encoded into as few batches as fit the frame limit."""
    out: list[bytes] = []
    chunk: list[Record] = []
    size = BATCH_HEADER_SIZE
    for rec in records:
        n = record_size(rec)
        if chunk and size + n > limit:
            out.append(encode_batch(chunk))
            chunk, size = [], BATCH_HEADER_SIZE
        chunk.append(rec)
        size += n
    if chunk:
        out.append(encode_batch(chunk))
    return out


def bookmarks_of(records: Iterable[Record]) -> list[Bookmark]:
    return [Bookmark(bytes(r.data()).decode("utf-8", "replace"), r.sequence, r.timestamp_ns)
            for r in records if r.kind == Kind.BOOKMARK]


def put_segment(store: ObjectStore, bucket: str, group: str, batches: Sequence[bytes],
                first: Record, last: Record, bookmarks: Sequence[Bookmark]) -> TimelineEntry:
    """PUT the segment, then (only then) its timeline entry; returns the entry.

    Idempotent: the keys derive from the sequence range, so a retry after a
    crash rewrites the same objects.
    """
    entry = put_segment_body(store, bucket, group, encode_segment(batches), first, last, bookmarks)
    put_timeline_entry(store, bucket, group, entry)
    return entry


def put_segment_body(store: ObjectStore, bucket: str, group: str, body: bytes,
                     first: Record, last: Record, bookmarks: Sequence[Bookmark]) -> TimelineEntry:
    """PUT an encoded segment only; returns the timeline entry to write once every earlier one is durable."""
    seg_key = keys.segment_key(group, first.sequence, last.sequence)
    store.put(bucket, seg_key, body)
    return TimelineEntry(first.sequence, last.sequence, first.timestamp_ns, last.timestamp_ns, seg_key,
                         len(body), tuple(bookmarks))


def put_timeline_entry(store: ObjectStore, bucket: str, group: str, entry: TimelineEntry) -> None:
    """PUT a timeline entry (after its segment is durable): from now on readers see the segment."""
    store.put(bucket, keys.timeline_key(group, entry.first_seq, entry.last_seq), entry.to_json())


# --- reading ---------------------------------------------------------------

class TimelineCache:
    """Timeline entries already read, by (bucket, key, stored size); bounded, least recently used out.

    A timeline entry is written once per key (the key is its sequence range) and
    never changed, so a reader that lists the timeline again (recovery answering
    ``points`` every few seconds) only needs to GET the entries it has not seen:
    O(new entries) per call instead of O(timeline). The stored size is part of
    the key, so a rewritten entry is read again. Listing still decides what
    exists: an entry removed by GC is not returned, whatever the cache holds.
    """

    def __init__(self, max_entries: int = 200_000) -> None:
        self._lru: cachetools.LRUCache = cachetools.LRUCache(max_entries)
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, int]) -> "TimelineEntry | None":
        with self._lock:
            return self._lru.get(key)

    def put(self, key: tuple[str, str, int], entry: "TimelineEntry") -> None:
        with self._lock:
            self._lru[key] = entry


def list_timeline(store: ObjectStore, bucket: str, group: str, start_after: str = "") -> list[ObjectInfo]:
    """The group's timeline entry objects in key (= first sequence) order."""
    return [i for i in store.list(bucket, keys.timeline_prefix(group), start_after=start_after)
            if i.key.endswith(".json")]


def read_timeline(store: ObjectStore, bucket: str, group: str, start_after: str = "",
                  workers: int = 8, cache: TimelineCache | None = None,
                  infos: list[ObjectInfo] | None = None) -> list[TimelineEntry]:
    """Timeline entries in key (= first sequence) order; entries not in ``cache`` are fetched in parallel.

    ``infos``: the entry objects, when the caller listed them already (services.recovery.listing).
    """
    if infos is None:
        infos = list_timeline(store, bucket, group, start_after)
    got: dict[str, TimelineEntry | None] = {}
    missing = []
    for i in infos:
        hit = cache.get((bucket, i.key, i.size)) if cache is not None else None
        if hit is None:
            missing.append(i)
        else:
            got[i.key] = hit

    def fetch(info) -> TimelineEntry | None:
        try:
            entry = TimelineEntry.from_json(store.get(bucket, info.key), f"{bucket}/{info.key}")
        except ObjectNotFound:
            return None  # removed by garbage collection while we listed
        if cache is not None:
            cache.put((bucket, info.key, info.size), entry)
        return entry

    if len(missing) <= 1 or workers <= 1:
        fetched = [fetch(i) for i in missing]
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(missing))) as pool:
            fetched = list(pool.map(fetch, missing))
    got.update((i.key, e) for i, e in zip(missing, fetched))
    return [e for e in (got[i.key] for i in infos) if e is not None]


def last_sequence(store: ObjectStore, bucket: str, group: str) -> int:
    """The highest sequence the timeline holds (0 for none), from key names alone."""
    last = 0
    for info in store.list(bucket, keys.timeline_prefix(group)):
        if info.key.endswith(".json"):
            try:
                last = max(last, keys.parse_range(info.key)[1])
            except ValueError as err:
                raise JournalError(f"{bucket}/{info.key} is not a timeline entry name; move it out of "
                                   f"{keys.timeline_prefix(group)}") from err
    return last


def manifest_doc(group: str, volumes: dict[str, int]) -> bytes:
    return json.dumps({"group": group, "volumes": dict(sorted(volumes.items()))}, separators=(",", ":")).encode()


def read_manifest(store: ObjectStore, bucket: str, group: str) -> dict[str, int] | None:
    """volume -> size in bytes, or None when the group has no manifest (unknown group)."""
    try:
        raw = store.get(bucket, keys.manifest_key(group))
    except ObjectNotFound:
        return None
    try:
        doc = json.loads(raw)
        return {str(v): int(s) for v, s in doc["volumes"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise JournalError(f"{bucket}/{keys.manifest_key(group)} is not a valid manifest: {err!r}") from err


def chain_from(entries: Sequence[TimelineEntry], start: int | None = None) -> list[TimelineEntry]:
    """The gap-free run of entries holding sequences start+1.. (overlaps kept, covered ones dropped).

    ``start`` None = where the oldest entry begins (GC may have removed the
    journal before a base; the run then starts just after that base).
    """
    ordered = sorted(entries, key=lambda e: (e.first_seq, -e.last_seq))
    if not ordered:
        return []
    covered = ordered[0].first_seq - 1 if start is None else start
    out: list[TimelineEntry] = []
    for e in ordered:
        if e.last_seq <= covered:
            continue
        if e.first_seq > covered + 1:
            break
        out.append(e)
        covered = e.last_seq
    return out


def seq_at_time(store: ObjectStore, bucket: str, entries: Sequence[TimelineEntry], t: int) -> int | None:
    """The last sequence with timestamp <= t in a gap-free run, or None when t is before the run's first record.

    Timestamps are non-decreasing with sequence (the tap stamps writes in order).
    """
    if not entries or t < entries[0].first_ts:
        return None
    e = [x for x in entries if x.first_ts <= t][-1]
    if e.last_ts <= t:
        return e.last_seq
    best = None
    for r in iter_segment_records(store.get(bucket, e.segment), e.segment):
        if r.timestamp_ns > t:
            break
        best = r.sequence
    return best
