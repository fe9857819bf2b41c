"""Append records to a profile file, crash-safely.

Every record is written with one ``write`` and flushed, so a crash loses at
most the record being written; the reader treats that torn tail as the end.
Reopening a profile to continue recording cuts such a torn tail first, so it
never ends up in the middle of the file (where it would be corruption).
``fsync`` runs every ``fsync_every_s`` seconds of profile time: a power loss
costs at most that much history, at a negligible I/O cost.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from agent.profile.format import Header, ProfileError, Second
from agent.profile.reader import read_profile

log = logging.getLogger(__name__)


class ProfileWriter:
    """Single-threaded appender; :class:`~agent.profile.recorder.ProfileRecorder` serializes calls."""

    def __init__(self, path: str | os.PathLike, header: Header, fsync_every_s: int = 60):
        self.path = Path(path)
        self.header = header
        self.fsync_every_s = fsync_every_s
        self.next_time: int | None = None  # first second a new record may start at
        if self.path.exists() and self.path.stat().st_size > 0:
            self._reopen()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "wb")
            self._f.write(header.encode())
            self._sync()
        self._last_sync = self.next_time or 0

    def _reopen(self) -> None:
        prof = read_profile(self.path)
        old = prof.header
        if (old.server, old.volume, old.block_size, old.locality_window_s) != (
                self.header.server, self.header.volume, self.header.block_size, self.header.locality_window_s):
            raise ProfileError(
                f"{self.path}: already a profile of {old.server}/{old.volume} (block {old.block_size}, "
                f"window {old.locality_window_s}s); pick another file for "
                f"{self.header.server}/{self.header.volume} or the same settings")
        self.header = old
        if prof.torn_tail_offset is not None:
            log.warning("%s: cutting torn final record at offset %d before appending",
                        self.path, prof.torn_tail_offset)
        self._f = open(self.path, "r+b")
        self._f.truncate(prof.end_offset)
        self._f.seek(prof.end_offset)
        if len(prof.records):
            last = prof.records[-1]
            self.next_time = int(last["time"]) + int(last["span"])

    def append(self, sec: Second) -> None:
        if self.next_time is not None and sec.time < self.next_time:
            raise ProfileError(f"{self.path}: record at {sec.time} goes back before {self.next_time}; "
                               "is the system clock stepping backwards?")
        self._f.write(sec.encode())
        self._f.flush()
        self.next_time = sec.time + sec.span
        if self.next_time - self._last_sync >= self.fsync_every_s:
            self._sync()

    def _sync(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())
        self._last_sync = self.next_time or 0

    def close(self) -> None:
        if not self._f.closed:
            self._sync()
            self._f.close()

    def __enter__(self) -> "ProfileWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

