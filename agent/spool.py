"""Durable local spool of captured records, one directory per group.

Segment files ``<first_seq>.seg`` hold entries ``u32 little-endian length |
v1 batch`` with one record per batch, in gap-free sequence order. The state
file (:mod:`agent.state`) holds ``acked_through``. Whole segments are
retired once every record in them is acknowledged. On open, segments are
scanned to rebuild an in-memory index (entry offset and timestamp per
sequence); a torn tail in the newest segment (a crash mid-append) is cut.

Recycling: a retired segment file is kept as a spare (``*.spare``, at most
``spare_segments``) and renamed to the next segment's name instead of
creating a new file, as PostgreSQL recycles WAL segments. Its pages are
still in the page cache and its blocks allocated, so appends overwrite
cached pages instead of allocating new ones (on this VM a new page costs
~10x a cached one) and fdatasync has no size change to journal. Entries are
written at explicit offsets; a recycled file holds stale entries past the
logical end, which the scan recognises (wrong header or an older sequence)
as the end. The rename is made durable before the first write into the
file, so new data never sits under an old name. Spares are deleted on open.

Tail in memory: the last unacknowledged entries appended (up to
``tail_bytes``) are also kept in memory, as the record and its encoding, so
a shipper that keeps up reads them from there: no ``pread`` and no second
CRC pass over bytes this process wrote itself. Only records whose payload
is immutable (``bytes``, or a view of one) are kept; an entry is dropped
once acknowledged, and the oldest first when the tail is full. The file
stays the truth: a reopened spool, or a read before the tail, reads the
segments and checks every CRC.

Thread-safe: appends (group lock holder), reads and acks (shipper) may run
on different threads.
"""

from __future__ import annotations

import itertools
import mmap
import os
import struct
import threading
from array import array
from collections import deque
from dataclasses import replace
from pathlib import Path

from agent import state as state_mod
from agent.errors import SpoolError
from shared import frames
from shared.frames import HEADER_SIZE, FrameError, Record, decode_batch
from shared.incarnation import new_incarnation

_LEN = struct.Struct("<I")
_SEQ_TS = struct.Struct("<QQ")
DEFAULT_SEGMENT_BYTES = 64 << 20
DEFAULT_SPARE_SEGMENTS = 2
DEFAULT_TAIL_BYTES = 64 << 20


class _Segment:
    def __init__(self, path: Path, first_seq: int):
        self.path = path
        self.first_seq = first_seq
        self.offsets = array("Q")
        self.stamps = array("Q")
        self.size = 0
        self.rfd = -1

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.offsets) - 1

    def read_fd(self) -> int:
        if self.rfd < 0:
            self.rfd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        return self.rfd

    def close(self) -> None:
        if self.rfd >= 0:
            os.close(self.rfd)
            self.rfd = -1


def _fsync_dir(path: Path) -> None:
    dfd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def entry_parts(rec: Record) -> list:
    """``u32 len | v1 batch of one record`` as buffers for writev, payload not copied.

    Byte-identical to ``encode_batch([rec])`` (a test pins that), from shared.frames' own
    pieces; built here only so the write path skips one copy of every payload.
    """
    return _entry(frames.record_parts(rec))


def _entry(encoding: tuple) -> list:
    fixed, payload = encoding
    body_len = len(fixed) + len(payload)
    return [_LEN.pack(HEADER_SIZE + body_len) + frames.batch_head(1, body_len) + fixed, payload]


def _immutable(payload) -> bool:
    """A payload the tail may hold on to: nobody can change its bytes later (an NBD receive
    buffer that is reused for the next write can)."""
    return isinstance(payload.obj if isinstance(payload, memoryview) else payload, bytes)


def _header_ok(buf, pos: int) -> bool:
    """The entry at pos starts with a whole batch header: magic, header CRC, length prefix agreeing."""
    try:
        (blen,) = _LEN.unpack_from(buf, pos)
        magic, _v, _r1, _r2, _count, body_len = frames._HEADER.unpack_from(buf, pos + 4)
        (hcrc,) = frames._HEADER_CRC.unpack_from(buf, pos + 4 + frames._HEADER.size)
    except struct.error:
        return False
    return (magic == frames.MAGIC and blen == HEADER_SIZE + body_len
            and frames._crc(buf[pos + 4: pos + 4 + frames._HEADER.size]) == hcrc)


def _peek(buf, pos: int) -> tuple[int, int, int]:
    """(entry length incl. prefix, sequence, timestamp) of the entry at pos."""
    (blen,) = _LEN.unpack_from(buf, pos)
    rec = pos + 4 + HEADER_SIZE
    vlen = buf[rec]
    seq, ts = _SEQ_TS.unpack_from(buf, rec + 1 + vlen)
    return 4 + blen, seq, ts


class Spool:
    def __init__(self, directory: str | Path, segment_bytes: int = DEFAULT_SEGMENT_BYTES,
                 spare_segments: int = DEFAULT_SPARE_SEGMENTS, tail_bytes: int = DEFAULT_TAIL_BYTES):
        self.dir = Path(directory)
        self.tail_bytes = tail_bytes
        # (record, its encoding as (fixed part, payload), entry size), gap-free from _tail_first on
        self._tail: deque[tuple[Record, tuple, int]] = deque()
        self._tail_first = 0
        self._tail_size = 0
        self.tail_reads = 0  # read_entries calls answered from the tail (figures, tests)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.spare_segments = spare_segments
        self._spares: list[Path] = []
        self._spare_names = itertools.count()
        self.state_path = self.dir / "state.json"
        self.state = state_mod.load(self.state_path)
        self._lock = threading.Lock()
        self._segments: list[_Segment] = []
        self._wfd = -1
        self._unsynced = False
        self._pending_sync: list[int] = []  # rotated segments not yet fsynced
        self._dir_unsynced = False
        self._save_lock = threading.Lock()  # orders state saves without blocking appends
        self._saved_acked = -1  # acked_through as last written to the state file
        self._recover()
        if not self.state.incarnation:
            # A new spool (or one from before incarnations): named once, durably, before any
            # record of it can reach ingest, so a restart never renames it.
            self.state.incarnation = new_incarnation()
            self.save_state()

    # -- opening -------------------------------------------------------------
    def _recover(self) -> None:
        for spare in self.dir.glob("*.spare"):  # recycled files of an earlier run: stale content only
            spare.unlink()
        paths = sorted(self.dir.glob("*.seg"))
        for i, path in enumerate(paths):
            try:
                first = int(path.stem)
            except ValueError as err:
                raise SpoolError(f"unexpected file {path} in spool; remove it") from err
            seg = _Segment(path, first)
            self._scan(seg, last=(i == len(paths) - 1))
            if self._segments and seg.first_seq != self._segments[-1].last_seq + 1:
                raise SpoolError(f"spool segment {path.name} does not follow {self._segments[-1].path.name}: "
                                 "records are missing; the spool cannot be trusted, re-protect the group")
            self._segments.append(seg)
        st = self.state
        if self._segments:
            tail = self._segments[-1]
            # The segments are the truth; max() covers a power loss that cut
            # unsynced records ingest had already acknowledged.
            st.last_seq = max(tail.last_seq, st.acked_through)
            if len(tail.stamps):
                st.last_ts = max(st.last_ts, tail.stamps[-1])
            head = self._segments[0].first_seq
            if head > st.acked_through + 1:  # the ack was lost after its segments were trimmed
                st.acked_through = head - 1
        st.acked_through = min(st.acked_through, st.last_seq)
        self._trim_locked()
        if self._segments:
            self._wfd = os.open(self._segments[-1].path, os.O_WRONLY | os.O_CLOEXEC)

    def _scan(self, seg: _Segment, last: bool) -> None:
        size = seg.path.stat().st_size
        if size == 0:
            return
        with open(seg.path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            pos, expect = 0, seg.first_seq
            while pos < size:
                if not _header_ok(buf, pos):
                    break  # torn tail, or stale bytes of a recycled file: the logical end (see below)
                try:
                    n, seq, ts = _peek(buf, pos)
                    if seq < seg.first_seq:
                        # A recycled file's stale entry (its earlier use held older sequences). A
                        # segment that ends early fails the continuity check in _recover, unless it
                        # is the newest one, whose unsynced tail a crash may cut.
                        break
                    if pos + n > size or seq != expect:
                        raise FrameError(f"entry at {pos} is incomplete or out of order")
                    if last:
                        decode_batch(buf[pos + 4: pos + n])
                except (FrameError, struct.error, IndexError) as err:
                    if not last:
                        raise SpoolError(f"spool segment {seg.path} is damaged at byte {pos} ({err}); "
                                         "re-protect the group") from err
                    break  # torn tail from a crash mid-append: cut it below
                seg.offsets.append(pos)
                seg.stamps.append(ts)
                pos += n
                expect += 1
        if pos < size:
            os.truncate(seg.path, pos)
        seg.size = pos

    # -- writing -------------------------------------------------------------
    @property
    def last_seq(self) -> int:
        return self.state.last_seq

    @property
    def last_ts(self) -> int:
        return self.state.last_ts

    @property
    def acked_through(self) -> int:
        return self.state.acked_through

    def append(self, records: list[Record]) -> None:
        """Append records (their sequences must continue the spool gap-free)."""
        if not records:
            return
        parts = []
        sizes = []
        encodings = []
        expect = self.state.last_seq + 1
        for rec in records:
            if rec.sequence != expect:
                raise SpoolError(f"record sequence {rec.sequence} does not follow {expect - 1}")
            encodings.append(frames.record_parts(rec))
            entry = _entry(encodings[-1])
            parts += entry
            sizes.append(sum(len(x) for x in entry))
            expect += 1
        total = sum(sizes)
        with self._lock:
            if (self._wfd < 0 or self._segments[-1].size >= self.segment_bytes
                    or self._segments[-1].last_seq != records[0].sequence - 1):
                self._rotate_locked(records[0].sequence)
            seg = self._segments[-1]
            try:
                # At the logical end (a recycled file has stale bytes past it); no join: payloads are large.
                written = os.pwritev(self._wfd, parts, seg.size)
                if written != total:
                    rest = memoryview(b"".join(parts))[written:]
                    while rest:
                        n = os.pwrite(self._wfd, rest, seg.size + total - len(rest))
                        rest = rest[n:]
            except OSError:
                os.ftruncate(self._wfd, seg.size)  # never leave a torn entry mid-file (disk full...)
                raise
            pos = seg.size
            for rec, n in zip(records, sizes):
                seg.offsets.append(pos)
                seg.stamps.append(rec.timestamp_ns)
                pos += n
            seg.size = pos
            self.state.last_seq = records[-1].sequence
            self.state.last_ts = records[-1].timestamp_ns
            self._unsynced = True
            self._keep_locked(records, encodings, sizes)

    def _keep_locked(self, records: list[Record], encodings: list[tuple], sizes: list[int]) -> None:
        """Add appended entries to the in-memory tail (or start it afresh where one cannot be kept)."""
        if not self.tail_bytes:
            return
        for rec, enc, n in zip(records, encodings, sizes):
            if not _immutable(enc[1]) or (self._tail and rec.sequence != self._tail_first + len(self._tail)):
                self._tail.clear()
                self._tail_size = 0
                continue
            if not self._tail:
                self._tail_first = rec.sequence
            self._tail.append((rec, enc, n))
            self._tail_size += n
        while self._tail and self._tail_size > self.tail_bytes:
            self._drop_oldest_locked()

    def _drop_oldest_locked(self) -> None:
        self._tail_size -= self._tail.popleft()[2]
        self._tail_first += 1

    def _rotate_locked(self, first_seq: int) -> None:
        if self._wfd >= 0:
            if self._unsynced:
                # fsync of a full segment takes long; it is done by the next
                # sync() (FLUSH/FUA) outside the lock, not here in the write path
                self._pending_sync.append(self._wfd)
            else:
                os.close(self._wfd)
        path = self.dir / f"{first_seq:020d}.seg"
        if self._spares:
            os.rename(self._spares.pop(), path)
            # Durable before any new record goes in: new data must never sit under the old name.
            _fsync_dir(self.dir)
            self._wfd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        else:
            self._wfd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._dir_unsynced = True  # the new name becomes durable at the next sync()
        self._segments.append(_Segment(path, first_seq))

    def sync(self) -> None:
        """Make every appended record durable (called on FLUSH and FUA)."""
        with self._lock:
            fds, self._pending_sync = self._pending_sync, []
            if self._unsynced and self._wfd >= 0:
                fds.append(os.dup(self._wfd))  # rotation may close the original while we fsync
            self._unsynced = False
            sync_dir, self._dir_unsynced = self._dir_unsynced, False
        try:
            for fd in fds:
                os.fdatasync(fd)
            if sync_dir:
                _fsync_dir(self.dir)
        finally:
            for fd in fds:
                os.close(fd)

    def dup_write_fd(self) -> list[int]:
        """A duplicate of the open segment's descriptor (for early writeback), if any."""
        with self._lock:
            return [os.dup(self._wfd)] if self._wfd >= 0 else []

    # -- reading and acknowledging --------------------------------------------
    def _find(self, seq: int) -> _Segment | None:
        for seg in self._segments:
            if seg.first_seq <= seq <= seg.last_seq:
                return seg
        return None

    def first_available(self) -> int:
        with self._lock:
            return self._segments[0].first_seq if self._segments else self.state.last_seq + 1

    def read(self, from_seq: int, max_bytes: int) -> list[Record]:
        """Records from ``from_seq`` on, about max_bytes of entries (at least one)."""
        return [rec for rec, _ in self.read_entries(from_seq, max_bytes)]

    def read_entries(self, from_seq: int, max_bytes: int) -> list[tuple[Record, tuple | None]]:
        """(record, its encoding as a batch carries it) from ``from_seq`` on, CRC-checked.

        The encoding is a tuple of buffers that joined are the spooled entry past its length
        prefix and one-record batch header, so a shipper can put an unchanged record into a
        batch without encoding it again. Entries still in the in-memory tail come from there
        (no read, no CRC pass: this process encoded them); the rest from the segment files.
        """
        with self._lock:
            if self._tail and self._tail_first <= from_seq < self._tail_first + len(self._tail):
                out, size = [], 0
                for rec, enc, n in itertools.islice(self._tail, from_seq - self._tail_first, None):
                    if out and size >= max_bytes:
                        break
                    out.append((rec, enc))
                    size += n
                self.tail_reads += 1
                return out
            seg = self._find(from_seq)
            if seg is None:
                return []
            i = from_seq - seg.first_seq
            start = seg.offsets[i]
            j = i + 1
            while j < len(seg.offsets) and seg.offsets[j] - start < max_bytes:
                j += 1
            end = seg.offsets[j] if j < len(seg.offsets) else seg.size
            fd = seg.read_fd()
        buf = memoryview(os.pread(fd, end - start, start))
        out, pos = [], 0
        while pos < len(buf):
            (blen,) = _LEN.unpack_from(buf, pos)
            recs = decode_batch(buf[pos + 4: pos + 4 + blen])
            if len(recs) == 1:  # what append writes
                out.append((recs[0], (buf[pos + 4 + HEADER_SIZE: pos + 4 + blen],)))
            else:  # not written by this spool: no single encoding to reuse
                out += ((rec, None) for rec in recs)
            pos += 4 + blen
        return out

    def timestamp_of(self, seq: int) -> int | None:
        with self._lock:
            seg = self._find(seq)
            return seg.stamps[seq - seg.first_seq] if seg else None

    def ack(self, through: int) -> None:
        """Record that ingest holds everything up to ``through``; trim whole segments.

        The state file is written (and fsynced) before any segment is retired,
        and without holding the append lock, so acks never stall writes.
        """
        with self._save_lock:
            self.mark_acked(through)
            self._persist_locked()  # also saves an ack marked earlier and not yet persisted

    def mark_acked(self, through: int) -> bool:
        """Advance ``acked_through`` in memory only (True if it moved); persist_acked() saves it.

        Losing a marked but unsaved ack (a crash) only means resending records
        ingest already holds: it acknowledges them again without producing twice.
        """
        with self._lock:
            through = min(through, self.state.last_seq)
            if through <= self.state.acked_through:
                return False
            self.state.acked_through = through
            while self._tail and self._tail_first <= through:  # ingest holds them: never read again
                self._drop_oldest_locked()
            return True

    def persist_acked(self) -> None:
        """Save the state with the marked ``acked_through`` (fsynced), then trim; no-op if already saved."""
        with self._save_lock:
            self._persist_locked()

    def _persist_locked(self) -> None:
        with self._lock:
            if self.state.acked_through == self._saved_acked:
                return
            snapshot = replace(self.state, bookmarks=list(self.state.bookmarks))
        state_mod.save(self.state_path, snapshot)
        self._saved_acked = snapshot.acked_through
        with self._lock:
            self._trim_locked()

    def _trim_locked(self) -> None:
        while self._segments and self._segments[0].last_seq <= self.state.acked_through:
            seg = self._segments[0]
            if len(self._segments) == 1:
                if seg.size < self.segment_bytes:
                    break  # still the open segment with room: keep appending to it
                if self._wfd >= 0:
                    os.close(self._wfd)
                    self._wfd = -1
            seg.close()
            self._retire(seg.path)
            self._segments.pop(0)

    def _retire(self, path: Path) -> None:
        """Keep a fully acknowledged segment file as a spare for the next rotation, or delete it."""
        if len(self._spares) < self.spare_segments:
            spare = self.dir / f"{next(self._spare_names):06d}.spare"
            try:
                os.rename(path, spare)
                self._spares.append(spare)
                return
            except FileNotFoundError:
                return
        path.unlink(missing_ok=True)

    def save_state(self) -> None:
        with self._save_lock:
            with self._lock:
                snapshot = replace(self.state, bookmarks=list(self.state.bookmarks))
            state_mod.save(self.state_path, snapshot)
            self._saved_acked = snapshot.acked_through

    def renumber(self, after: int, ts: int, epoch: int) -> None:
        """Re-protection (agent.shipper): drop every record, number the next one ``after + 1``.

        ``after`` is ingest's acked_through for the group, so the journal stays one gap-free
        sequence; the records dropped were never acknowledged and the initial sync that follows
        copies the disks they changed. Segments go before the state is saved: a crash in between
        leaves a state that registers again and renumbers again (same epoch check).
        """
        with self._save_lock, self._lock:
            if self._wfd >= 0:
                os.close(self._wfd)
                self._wfd = -1
            for fd in self._pending_sync:
                os.close(fd)
            self._pending_sync, self._unsynced = [], False
            for seg in self._segments:
                seg.close()
                seg.path.unlink(missing_ok=True)
            self._segments = []
            self._tail.clear()
            self._tail_size = 0
            _fsync_dir(self.dir)
            st = self.state
            st.last_seq = st.acked_through = after
            st.last_ts = max(st.last_ts, ts)
            st.epoch, st.initial_sync_complete, st.bookmarks = epoch, False, []
            state_mod.save(self.state_path, replace(st, bookmarks=[]))
            self._saved_acked = after

    # -- figures -------------------------------------------------------------
    def disk_bytes(self) -> int:
        with self._lock:
            return sum(s.size for s in self._segments)

    def pending(self) -> tuple[int, int]:
        """(records, bytes) not yet acknowledged."""
        with self._lock:
            first = self.state.acked_through + 1
            count = self.state.last_seq - self.state.acked_through
            total = 0
            for seg in self._segments:
                if seg.last_seq < first:
                    continue
                start = seg.offsets[first - seg.first_seq] if seg.first_seq <= first else 0
                total += seg.size - start
            return count, total

    def close(self) -> None:
        self.sync()
        with self._lock:
            if self._wfd >= 0:
                os.fsync(self._wfd)
                os.close(self._wfd)
                self._wfd = -1
            for seg in self._segments:
                seg.close()
            state_mod.save(self.state_path, self.state)
