"""Verify: prove every retained recovery point of a tenant restorable (the role of ``restic check --read-data``).

:func:`verify_tenant` reads every object the recovery readers would read and
checks it the way they would, plus the consistency between them:

* manifest, timeline entries and base documents parse; every object they
  reference is present (``missing``);
* every object reads back: with the encrypted store an altered, truncated or
  moved object fails its AES-GCM tag (``tag failed`` / ``truncated``);
* journal segments decode fully: length prefixes, batch header CRC, every
  record's CRC32C, zstd payloads (``CRC mismatch``, ``truncated``,
  ``corrupt``); the records are exactly the entry's range, gap-free, with the
  entry's first/last timestamps and bookmarks (``range mismatch``);
* base chunks decompress and hash to their content address
  (``chunk hash mismatch``) at the length their position needs;
* the timeline is gap-free from where the journal starts to the latest
  point (``timeline gap``); a segment inside that span no entry covers has
  lost its entry (``timeline gap``); the journal starts at sequence 1 or a
  base stands inside its first segment, and every retained policy point the
  journal no longer covers has a base (``missing``, :mod:`verify_chain`).

Read-only. While it runs it holds leases (:mod:`shared.leases`): one on the
whole journal and one per base, taken before it lists what to read, so GC
cannot delete under it. Findings are :class:`Problem` rows naming the
bucket/key and what is wrong; a clean tenant has none.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from shared import bases as B
from shared import keys
from shared.frames import FrameError, Kind
from shared.journal import JournalError, TimelineEntry, iter_segment_records, read_manifest
from shared.leases import Lease, acquire
from shared.objectstore import ObjectNotFound, ObjectStore, ObjectStoreError
from services.recovery.verify_chain import check_chain
from services.recovery.verify_reads import classify, read_chunk_checked
from services.recovery.verify_report import Problem, VerifyReport
from services.retention.gc import list_groups

Progress = Callable[[int], None]  # called with the bytes just verified


class _Run:
    def __init__(self, store: ObjectStore, bucket: str, report: VerifyReport, progress: Progress | None,
                 workers: int, lease_ttl_s: float) -> None:
        self.store, self.bucket, self.report = store, bucket, report
        self.progress, self.workers = progress, workers
        self.lease_ttl_s = lease_ttl_s
        self.leases: list[Lease] = []
        self._renewed = time.monotonic()
        self._lock = threading.Lock()

    def lease(self, group: str, base_seq: int) -> None:
        self.leases.append(acquire(self.store, self.bucket, group, base_seq, 0, self.lease_ttl_s, holder="verify"))

    def _renew_due(self) -> None:
        """Push the leases' expiry when a third of their TTL has passed (a long verify outlives one TTL)."""
        with self._lock:
            if time.monotonic() - self._renewed < self.lease_ttl_s / 3:
                return
            self._renewed = time.monotonic()
            leases = list(self.leases)
        for lease in leases:
            lease.renew()

    def release(self) -> None:
        for lease in self.leases:
            try:
                lease.release()
            except ObjectStoreError:
                pass  # it expires by itself

    def where(self, key: str) -> str:
        return f"{self.bucket}/{key}"

    def problem(self, key: str, what: str, detail: str) -> None:
        with self._lock:
            self.report.problems.append(Problem(self.where(key), what, detail))

    def done(self, nbytes: int) -> None:
        with self._lock:
            self.report.objects += 1
            self.report.bytes += nbytes
            if self.progress is not None:
                self.progress(nbytes)
        self._renew_due()

    def get(self, key: str, listed: bool = False) -> bytes | None:
        """The object's bytes, or None after recording why it could not be read.

        ``listed``: the key came from a listing, so its absence means GC removed it since (not a fault).
        """
        try:
            return self.store.get(self.bucket, key)
        except ObjectNotFound:
            if not listed:
                self.problem(key, "missing", "referenced but not in the bucket")
        except ObjectStoreError as err:
            self.problem(key, classify(err), str(err))
        return None

    def map(self, fn, items) -> list:
        if self.workers <= 1 or len(items) <= 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(fn, items))


def planned_bytes(store: ObjectStore, bucket: str, groups: list[str]) -> int:
    """What a verify will read, from listings alone (for a progress bar's total)."""
    total = sum(i.size for i in store.list(bucket, keys.CHUNKS_PREFIX))
    for g in groups:
        total += sum(i.size for i in store.list(bucket, keys.group_prefix(g)) if "/leases/" not in i.key)
    return total


def verify_tenant(store: ObjectStore, bucket: str, group: str | None = None, progress: Progress | None = None,
                  workers: int = 8, lease_ttl_s: float = 3600.0, now_ns: int | None = None) -> VerifyReport:
    """Verify one group (or every group with a manifest) of a tenant's bucket; never raises for bad data.

    ``now_ns`` (default: wall clock) decides which policy points must still have a base.
    """
    now_ns = time.time_ns() if now_ns is None else now_ns
    report = VerifyReport(bucket)
    t0 = time.perf_counter()
    report.groups = [group] if group is not None else list_groups(store, bucket)
    run = _Run(store, bucket, report, progress, workers, lease_ttl_s)
    chunk_refs: dict[str, tuple[int, str]] = {}  # chunk id -> (expected length, a base referencing it)
    try:
        for g in report.groups:
            _verify_group(run, g, chunk_refs, now_ns)
        _verify_chunks(run, chunk_refs)
    finally:
        run.release()
    report.seconds = time.perf_counter() - t0
    return report


def _verify_group(run: _Run, group: str, chunk_refs: dict, now_ns: int) -> None:
    store, bucket = run.store, run.bucket
    # Lease first, then list: GC spares what a lease written before its phase 2 protects.
    run.lease(group, 0)
    for s in B.list_base_sequences(store, bucket, group):
        run.lease(group, s)
    raw = run.get(keys.manifest_key(group))
    manifest: dict[str, int] = {}
    if raw is not None:
        run.done(len(raw))
        try:
            manifest = read_manifest(store, bucket, group) or {}
        except (JournalError, ObjectStoreError) as err:
            run.problem(keys.manifest_key(group), "malformed", str(err))
    entries = _verify_timeline(run, group, manifest)
    bases = _verify_bases(run, group, manifest, chunk_refs)
    check_chain(run, group, entries, bases, now_ns)


def _verify_timeline(run: _Run, group: str, manifest: dict[str, int]) -> list[TimelineEntry]:
    names = [i.key for i in run.store.list(run.bucket, keys.timeline_prefix(group)) if i.key.endswith(".json")]

    def one(key: str) -> TimelineEntry | None:
        raw = run.get(key, listed=True)
        if raw is None:
            return None
        run.done(len(raw))
        try:
            entry = TimelineEntry.from_json(raw, run.where(key))
            first, last = keys.parse_range(key)
        except (JournalError, ValueError) as err:
            run.problem(key, "malformed", str(err))
            return None
        if (entry.first_seq, entry.last_seq) != (first, last) or entry.segment != keys.segment_key(group, first, last):
            run.problem(key, "range mismatch", f"entry says {entry.first_seq}-{entry.last_seq} in {entry.segment}")
            return None
        for bm in entry.bookmarks:
            if not first <= bm.sequence <= last:
                run.problem(key, "range mismatch", f"bookmark {bm.name!r} at sequence {bm.sequence} lies outside "
                                                   f"the entry's range {first}-{last}")
        _verify_segment(run, entry, manifest)
        return entry

    entries = [e for e in run.map(one, names) if e is not None]
    _orphan_segments(run, group, names)
    return entries


def _verify_segment(run: _Run, e: TimelineEntry, manifest: dict[str, int]) -> None:
    body = run.get(e.segment)
    if body is None:
        return
    run.done(len(body))
    if len(body) != e.size:
        what = "truncated" if len(body) < e.size else "range mismatch"
        run.problem(e.segment, what, f"holds {len(body)} bytes, its timeline entry says {e.size}")
        return
    expect, first_ts, last_ts, bookmarks = e.first_seq, None, None, []
    try:
        for r in iter_segment_records(body, run.where(e.segment)):
            if r.sequence != expect:
                run.problem(e.segment, "range mismatch", f"record {r.sequence} where {expect} was expected "
                                                         f"(entry {e.first_seq}-{e.last_seq})")
                return
            if r.kind == Kind.BOOKMARK:
                bookmarks.append((r.sequence, r.timestamp_ns))
            else:
                if r.kind == Kind.DATA:
                    r.data()  # decompresses zstd payloads and checks their length
                size = manifest.get(r.volume)
                if manifest and (size is None or r.end > size):
                    run.problem(e.segment, "range mismatch", f"record {r.sequence} writes {r.volume!r} at "
                                                             f"{r.offset}+{r.length}, outside the manifest")
            first_ts = r.timestamp_ns if first_ts is None else first_ts
            last_ts = r.timestamp_ns
            expect += 1
    except (JournalError, FrameError) as err:
        run.problem(e.segment, classify(err), str(err))
        return
    if expect - 1 != e.last_seq or (first_ts, last_ts) != (e.first_ts, e.last_ts):
        run.problem(e.segment, "range mismatch", f"holds records {e.first_seq}-{expect - 1} with timestamps "
                                                 f"{first_ts}..{last_ts}; entry says {e.first_seq}-{e.last_seq}, "
                                                 f"{e.first_ts}..{e.last_ts}")
    if sorted((b.sequence, b.timestamp_ns) for b in e.bookmarks) != bookmarks:
        run.problem(e.segment, "range mismatch", "the entry's bookmarks differ from the segment's bookmark records")


def _orphan_segments(run: _Run, group: str, entry_keys: list[str]) -> None:
    """A segment inside the journal's span that no entry covers has lost its timeline entry.

    Not faults: segments wholly before the oldest entry (GC hid their entries and deletes them at its
    next run) and segments reaching past the latest entry (a flush in flight, or a crash before the entry).
    """
    ranges = sorted(keys.parse_range(k) for k in entry_keys)
    if not ranges:
        return
    merged: list[list[int]] = []
    for a, b in ranges:
        if merged and a <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    start, latest = ranges[0][0], max(b for _, b in ranges)
    for info in run.store.list(run.bucket, keys.journal_prefix(group)):
        try:
            first, last = keys.parse_range(info.key)
        except ValueError:
            run.problem(info.key, "malformed", "not a segment name; move it out of the journal prefix")
            continue
        if first < start or last > latest or any(a <= first and last <= b for a, b in merged):
            continue
        run.problem(keys.timeline_key(group, first, last), "timeline gap",
                    f"segment {info.key} has no timeline entry covering it (entry missing)")


def _verify_bases(run: _Run, group: str, manifest: dict[str, int], chunk_refs: dict) -> list[B.Base]:
    out = []
    for s in B.list_base_sequences(run.store, run.bucket, group):
        key = keys.base_key(group, s)
        raw = run.get(key, listed=True)
        if raw is None:
            continue
        run.done(len(raw))
        try:
            base = B.Base.from_json(group, raw, run.where(key))
        except B.BaseError as err:
            run.problem(key, "malformed", str(err))
            continue
        if base.sequence != s:
            run.problem(key, "range mismatch", f"document says sequence {base.sequence}")
        if manifest and {v: vc.size for v, vc in base.volumes.items()} != manifest:
            run.problem(key, "range mismatch", "volumes or sizes differ from the group's manifest")
        for vc in base.volumes.values():
            for i, cid in enumerate(vc.chunks):
                if cid is not None:
                    chunk_refs.setdefault(cid, (min(base.chunk_size, vc.size - i * base.chunk_size), key))
        out.append(base)
    return out


def _verify_chunks(run: _Run, chunk_refs: dict[str, tuple[int, str]]) -> None:
    def one(item: tuple[str, tuple[int, str]]) -> None:
        cid, (length, base_key) = item
        key = keys.chunk_key(cid)
        got = read_chunk_checked(run.store, run.bucket, cid, length)
        if isinstance(got, int):
            run.done(got)
            return
        what, detail = got
        run.problem(key, what, f"{detail} (referenced by {run.where(base_key)})")

    run.map(one, sorted(chunk_refs.items()))
