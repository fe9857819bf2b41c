"""A consistency group: volumes sharing one sequence, one lock, one spool.

Every change goes through :meth:`Group._capture` under ``self.lock``: the
disk is changed first, then records get the next sequences and a timestamp
that never decreases, then they are appended to the spool. Holding one lock
across apply and append makes sequence order equal apply order across all
volumes of the group, which is what makes a point-in-time consistent.

When the spool passes its size limit the group enters *overflow*: writes
still reach the disk and are acknowledged, but instead of records only
dirty chunks are remembered; :mod:`agent.sync` copies them again later.

Every resync is a window of points that match no real disk, marked in the
journal (shared/consistency.py): :meth:`Group.begin_resync` spools the
``dialback.resync-start.<seq>`` marker as the first record after the last one
spooled in order (before any resync chunk or new write), and
:meth:`Group.resync_finished` the ``dialback.resync-complete.<seq>`` marker.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from agent.dirty import DirtyMap
from agent.disk import Disk
from agent.errors import BookmarkError, SpoolError
from agent.spool import Spool
from agent.writeback import Writeback
from shared.consistency import resync_complete_name, resync_start_name
from shared.frames import Kind, Record

log = logging.getLogger(__name__)

PIECE = 256 << 10  # largest DATA record payload; also the dirty-chunk and sync-chunk size
RESERVED_PREFIX = "dialback."
INITIAL_SYNC_BOOKMARK = "dialback.initial-sync-complete"
ALARM_OVERFLOW = "spool_overflow"
ALARM_RESYNC = "ingest_resync"


class Group:
    def __init__(self, name: str, disks: dict[str, Disk], spool: Spool, spool_limit: int, low_water: int,
                 writeback_bytes: int = 0):
        self.name = name
        self.disks = disks
        self.spool = spool
        self.spool_limit = spool_limit
        self.low_water = low_water
        self.lock = threading.Lock()
        self.alarms: dict[str, str] = {}
        self.overflow = False
        self.dirty = {v: DirtyMap(d.size, PIECE) for v, d in disks.items()}
        self.overflow_since_ns: int | None = None
        self.sync_progress = {v: 0 for v in disks}
        self.sync_generation = 0  # bumped by renumber(): sync progress made before it is void
        self.writeback = Writeback(self._writeback_fds, writeback_bytes)
        self.registered = threading.Event()
        if spool.state.registered:
            self.registered.set()
        if spool.state.needs_resync:
            # A restart during overflow lost the dirty map: copy everything.
            log.warning("group %s: spool overflowed before the restart; resyncing every volume", name)
            # Before any write of this run is spooled: those come after the unspooled ones.
            self.begin_resync(mark_all=True)

    @property
    def state(self):
        return self.spool.state

    @property
    def bookmark_volume(self) -> str:
        """Bookmarks belong to the group; the record names its first volume."""
        return sorted(self.disks)[0]

    # -- capture -------------------------------------------------------------
    def _capture(self, volume: str, offset: int, length: int, apply, make) -> None:
        """Apply a change to the disk, then spool its records (or mark it dirty)."""
        with self.lock:
            apply()
            if not self.overflow:
                try:
                    self._append(make)
                except (OSError, SpoolError) as err:
                    self._enter_overflow(f"cannot append to the spool: {err}")
            if self.overflow:
                self.dirty[volume].mark(offset, length)
            elif self.spool.pending()[1] > self.spool_limit:
                self._enter_overflow(f"spool holds more than its limit of {self.spool_limit} bytes "
                                     "not yet acknowledged by ingest")

    def _append(self, make) -> tuple[int, int]:
        """Under the lock: number records produced by make(seq, ts) and spool them."""
        seq = self.spool.last_seq + 1
        ts = max(time.time_ns(), self.spool.last_ts)
        records = make(seq, ts)
        self.spool.append(records)
        return records[-1].sequence, ts

    def write(self, volume: str, offset: int, data: bytes) -> None:
        disk = self.disks[volume]

        def make(seq: int, ts: int) -> list[Record]:
            view = memoryview(data)
            return [Record(volume, seq + i, ts, offset + pos, len(view[pos:pos + PIECE]), Kind.DATA,
                           payload=view[pos:pos + PIECE])
                    for i, pos in enumerate(range(0, len(data), PIECE))] or []

        if not data:
            return
        self._capture(volume, offset, len(data), lambda: disk.write(offset, data), make)
        self.writeback.wrote(len(data))

    def _writeback_fds(self) -> list[int]:
        """Duplicated descriptors of every disk and the open spool segment."""
        with self.lock:
            fds = [os.dup(d.fd) for d in self.disks.values() if d.fd >= 0]
        return fds + self.spool.dup_write_fd()

    def _ranged(self, volume: str, offset: int, length: int, kind: Kind, punch: bool) -> None:
        disk = self.disks[volume]
        if length <= 0:
            return
        self._capture(volume, offset, length, lambda: disk.zero(offset, length, punch),
                      lambda seq, ts: [Record(volume, seq, ts, offset, length, kind)])

    def trim(self, volume: str, offset: int, length: int) -> None:
        # The disk is zeroed too, so the disk and a recovered image agree.
        self._ranged(volume, offset, length, Kind.TRIM, True)

    def zeroes(self, volume: str, offset: int, length: int, no_hole: bool = False) -> None:
        self._ranged(volume, offset, length, Kind.ZEROES, not no_hole)

    def flush(self) -> None:
        """Make every acknowledged change durable on the disks and in the spool."""
        for disk in self.disks.values():
            disk.sync()
        self.spool.sync()

    # -- sync support ---------------------------------------------------------
    def copy_region(self, volume: str, offset: int, max_len: int) -> int:
        """Spool the current content of a region as DATA or ZEROES records.

        Reads under the lock so no write slips between the read and the
        sequence. Holes and all-zero chunks become one ZEROES record, so a
        sparse disk is cheap. Returns how many bytes were covered.
        """
        disk = self.disks[volume]
        end = min(offset + max_len, disk.size)
        if offset >= end:
            return 0
        with self.lock:
            if self.overflow:
                return 0
            data_at = disk.next_data(offset)
            if data_at > offset:
                length = min(data_at, end) - offset
                self._append(lambda seq, ts: [Record(volume, seq, ts, offset, length, Kind.ZEROES)])
                return length
            length = min(PIECE, end - offset)
            data = disk.read(offset, length)
            if data.count(0) == length:
                self._append(lambda seq, ts: [Record(volume, seq, ts, offset, length, Kind.ZEROES)])
            else:
                self._append(lambda seq, ts: [Record(volume, seq, ts, offset, length, Kind.DATA, payload=data)])
            return length

    def resync_chunk(self, volume: str, index: int) -> bool:
        """Copy one dirty chunk whole and clear its bit, atomically w.r.t. writes."""
        disk = self.disks[volume]
        offset = index * PIECE
        length = min(PIECE, disk.size - offset)
        with self.lock:
            if self.overflow:
                return False
            data = disk.read(offset, length)
            if data.count(0) == length:
                self._append(lambda seq, ts: [Record(volume, seq, ts, offset, length, Kind.ZEROES)])
            else:
                self._append(lambda seq, ts: [Record(volume, seq, ts, offset, length, Kind.DATA, payload=data)])
            self.dirty[volume].clear(index)
            return True

    def renumber(self, after: int, ts: int, epoch: int) -> None:
        """Re-protection: number from ``after + 1`` (ingest's acked_through) and copy every volume
        again, ending in the initial-sync bookmark (agent.sync). Records spooled so far are
        dropped: ingest never acknowledged them and the copy covers what they changed."""
        with self.lock:
            self.spool.renumber(after, ts, epoch)
            self.sync_generation += 1
            self.sync_progress = {v: 0 for v in self.disks}
        log.warning("group %s: re-protected (epoch %d); sequences continue after %d with a full initial sync",
                    self.name, epoch, after)

    def advance_sync(self, volume: str, generation: int, done: int) -> None:
        """Record initial-sync progress, unless renumber() restarted the sync since ``generation``."""
        with self.lock:
            if generation == self.sync_generation:
                self.sync_progress[volume] = done

    def _enter_overflow(self, why: str) -> None:
        self.overflow = True
        self.overflow_since_ns = self.overflow_since_ns or time.time_ns()
        msg = (f"{why}; writes are still served but only tracked as dirty regions. Points from now until "
               "the resync completes are not consistent. Check the link to ingest or raise the spool limit.")
        self.alarms[ALARM_OVERFLOW] = msg
        log.error("group %s: %s", self.name, msg)
        self.state.needs_resync = True
        try:
            self.spool.save_state()
        except OSError:
            log.exception("group %s: cannot save spool state", self.name)

    def leave_overflow_if_drained(self) -> bool:
        """Start the resync phase once the spool is below the low watermark (start marker first)."""
        with self.lock:
            if self.overflow and self.spool.pending()[1] <= self.low_water:
                self.overflow = False
                if not self._begin_resync_locked():
                    self.overflow = True  # marker not spooled: keep tracking dirty regions, retry later
                    return False
                log.warning("group %s: spool drained below %d bytes; resyncing dirty regions",
                            self.name, self.low_water)
                return True
            return False

    def begin_resync(self, mark_all: bool = False) -> bool:
        """Open a resync window; ``mark_all``: copy every volume whole (e.g. the spool lost records).

        The one way into a resync, for every cause: it spools the start marker
        unless the window is already open (or the group is in overflow: leaving
        it spools the marker), so no resync chunk or write lands in the journal
        before its window is marked. False when the marker could not be spooled;
        the group is then in overflow and retries when it leaves it.
        """
        with self.lock:
            if mark_all:
                for dm in self.dirty.values():
                    dm.mark_all()
            if self.overflow:
                self.state.needs_resync = True
                self.spool.save_state()
                return True
            if not self._begin_resync_locked():
                self._enter_overflow("cannot spool the resync start marker")
                return False
            return True

    def _begin_resync_locked(self) -> bool:
        """Under the lock, not in overflow: spool the start marker (once per window), set needs_resync.

        The marker carries the timestamp of the last record spooled in order,
        so the window's time range starts where consistency ended (writes
        during the overflow happened after it) and ingest's rule that
        timestamps never decrease holds.
        """
        st = self.state
        st.needs_resync = True
        if not st.resync_marked:
            seq = self.spool.last_seq + 1
            ts = self.spool.last_ts if self.spool.last_seq else time.time_ns()
            name = resync_start_name(seq)
            try:
                self.spool.append([Record(self.bookmark_volume, seq, ts, 0, 0, Kind.BOOKMARK,
                                          payload=name.encode())])
            except (OSError, SpoolError) as err:
                log.error("group %s: cannot spool the resync start marker: %s", self.name, err)
                return False
            st.bookmarks.append(name)
            st.resync_marked = True
        try:
            self.spool.save_state()
        except OSError:
            log.exception("group %s: cannot save spool state", self.name)
        return True

    def request_full_resync(self, why: str) -> None:
        """Copy every chunk of every volume again: records ingest needs are gone from the spool.

        The same path as the overflow resync (``begin_resync`` marks the window's
        start; agent.sync ships the dirty chunks, then ``dialback.resync-complete.N``);
        points inside the window are not consistent.
        """
        with self.lock:
            self.alarms[ALARM_RESYNC] = (f"{why}; resyncing every volume. Points from now until the resync "
                                         "completes are not consistent.")
        log.error("group %s: %s; resyncing every volume", self.name, why)
        self.begin_resync(mark_all=True)

    def resync_finished(self) -> None:
        with self.lock:
            if self.overflow or any(len(d) for d in self.dirty.values()) or not self.state.needs_resync:
                return
            self.state.needs_resync = False
            self.state.resync_marked = False
            self._bookmark_locked(resync_complete_name(self.spool.last_seq + 1))
            self.alarms.pop(ALARM_OVERFLOW, None)
            self.alarms.pop(ALARM_RESYNC, None)
            self.overflow_since_ns = None
            log.warning("group %s: resync complete; points from now on are consistent again", self.name)

    # -- bookmarks -----------------------------------------------------------
    def check_bookmark_name(self, name: str, internal: bool = False) -> None:
        """Refuse a bad name before any freeze happens."""
        if not name or len(name.encode()) > 200 or not name.isprintable():
            raise BookmarkError("bookmark names must be 1-200 printable characters")
        if name.startswith(RESERVED_PREFIX) and not internal:
            raise BookmarkError(f"bookmark names starting with {RESERVED_PREFIX!r} are reserved for Dialback")
        if name in self.state.bookmarks:
            raise BookmarkError(f"group {self.name} already has a bookmark named {name!r}; pick another name")

    def bookmark(self, name: str, internal: bool = False, generation: int | None = None) -> tuple[int, int]:
        """Append a BOOKMARK record, ordered with writes; returns (sequence, timestamp_ns).

        ``generation``: refuse (BookmarkError) if renumber() ran since (the initial-sync bookmark).
        """
        self.check_bookmark_name(name, internal)
        with self.lock:
            if name == INITIAL_SYNC_BOOKMARK and (self.overflow or self.state.needs_resync):
                # Checked under the lock: an overflow since the syncer looked would make it a lie.
                raise BookmarkError("the spool overflowed during the initial sync; it completes after the resync")
            if generation is not None and generation != self.sync_generation:
                raise BookmarkError("the group was re-protected meanwhile: its initial sync starts again")
            if not internal:
                if name in self.state.bookmarks:
                    raise BookmarkError(f"group {self.name} already has a bookmark named {name!r}; pick another name")
                if not self.state.initial_sync_complete:
                    raise BookmarkError("the initial sync has not finished, so this point could not be recovered; "
                                        "retry once `dialback agent status` shows the sync complete")
                if self.overflow or self.state.needs_resync:
                    raise BookmarkError("the spool overflowed and the resync has not finished, so this point "
                                        "would not be consistent; retry after the resync")
            return self._bookmark_locked(name)

    def _bookmark_locked(self, name: str) -> tuple[int, int]:
        vol = self.bookmark_volume
        seq, ts = self._append(lambda s, t: [Record(vol, s, t, 0, 0, Kind.BOOKMARK, payload=name.encode())])
        self.state.bookmarks.append(name)
        if name == INITIAL_SYNC_BOOKMARK:
            self.state.initial_sync_complete = True
        self.spool.save_state()
        return seq, ts

    def rpo_seconds(self) -> float:
        """Now minus the time of the oldest write not yet acknowledged by ingest."""
        oldest = None
        st = self.state
        if st.last_seq > st.acked_through:
            oldest = self.spool.timestamp_of(st.acked_through + 1)
        if self.overflow_since_ns is not None:
            oldest = min(oldest or self.overflow_since_ns, self.overflow_since_ns)
        return 0.0 if oldest is None else max(0.0, (time.time_ns() - oldest) / 1e9)

    def close(self) -> None:
        self.writeback.close()
        self.spool.close()
        for disk in self.disks.values():
            disk.close()


class VolumeExport:
    """The NBD server's view of one volume of a group."""

    def __init__(self, group: Group, volume: str):
        self.group = group
        self.name = volume
        self.disk = group.disks[volume]
        self.size = self.disk.size

    def read(self, offset: int, length: int) -> bytes:
        return self.disk.read(offset, length)

    def write(self, offset: int, data: bytes) -> None:
        self.group.write(self.name, offset, data)

    def trim(self, offset: int, length: int) -> None:
        self.group.trim(self.name, offset, length)

    def zeroes(self, offset: int, length: int, no_hole: bool) -> None:
        self.group.zeroes(self.name, offset, length, no_hole)

    def flush(self) -> None:
        self.group.flush()
