"""ProfileRecorder: the hook the NBD tap calls per write in profile-only mode.

Usage by the tap (``dialback agent profile``)::

    rec = ProfileRecorder("/var/lib/dialback/web1.dbprof", server="web1", volume="disk0",
                          volume_size=export_size)
    rec.start()                      # background thread: closes seconds, compresses samples, appends
    ...
    rec.on_write(offset, length, data, kind)   # per write; kind "data"/"zeroes"/"trim" or frames.Kind
    ...
    rec.close()                      # flushes the open second and idle time, fsyncs

``on_write`` holds a lock for a few dictionary/set operations and never does
I/O or compression: sampled payloads are copied (at most ``max_sample``
bytes) and compressed by the background thread, within a per-second budget,
so the tap's write latency does not depend on the profiler.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import zstandard

from agent.profile.accumulate import DATA, TRIM, ZEROES, Accumulator
from agent.profile.format import Header, Second
from agent.profile.locality import LocalityTracker
from agent.profile.writer import ProfileWriter

log = logging.getLogger(__name__)

_KIND_BY_INT = {0: DATA, 1: ZEROES, 2: TRIM}


class ProfileRecorder:
    def __init__(self, path: str, server: str, volume: str = "disk0", volume_size: int = 0, *,
                 sample_every_bytes: int = 1 << 20, max_sample: int = 128 << 10,
                 sample_budget_per_s: int = 4 << 20, zstd_level: int = 1, block_size: int = 4096,
                 locality_window_s: int = 3600, idle_flush_s: int = 300,
                 clock: Callable[[], float] = time.time):
        self.clock = clock
        header = Header(server, volume, volume_size, block_size, locality_window_s, zstd_level, int(clock()))
        self.writer = ProfileWriter(path, header)
        self.header = self.writer.header
        self._tracker = LocalityTracker(block_size, locality_window_s)
        self._pending: list[Second] = []
        self._acc = Accumulator(self._pending.append, self._tracker)
        self._acc.start(max(int(clock()), self.writer.next_time or 0))
        self._lock = threading.Lock()
        self._io_lock = threading.Lock()
        self.sample_every = sample_every_bytes
        self.max_sample = max_sample
        self.sample_budget = sample_budget_per_s
        self._countdown = 0  # sample the first write, then one every sample_every bytes
        self._budget_left = sample_budget_per_s
        self._budget_second = -1
        self._zstd = zstandard.ZstdCompressor(level=zstd_level)
        self.idle_flush_s = idle_flush_s
        self.samples_dropped = 0
        self.records_written = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the tap's hook -----------------------------------------------------
    def on_write(self, offset: int, length: int, data: bytes | memoryview | None = None, kind=DATA) -> None:
        """Count one write (thread-safe, no I/O). ``data`` may be None: no compressibility sample then."""
        if not isinstance(kind, str):
            kind = _KIND_BY_INT.get(int(kind))
            if kind is None:
                return  # bookmarks change no data
        now = int(self.clock())
        with self._lock:
            b = self._acc.add(now, offset, length, kind)
            if kind != DATA or data is None:
                return
            self._countdown -= length
            if self._countdown > 0:
                return
            self._countdown = self.sample_every
            if self._budget_second != b.time:
                self._budget_second, self._budget_left = b.time, self.sample_budget
            take = min(len(data), self.max_sample)
            if take > self._budget_left:
                self.samples_dropped += 1
                return
            self._budget_left -= take
            b.samples.append(bytes(data[:take]))

    # -- background work ----------------------------------------------------
    def tick(self) -> int:
        """Close finished seconds, compress their samples, append them; returns records written."""
        now = int(self.clock())
        with self._lock:
            nt = self._acc.next_time
            self._acc.roll(now, flush_idle=nt is not None and now - nt >= self.idle_flush_s)
            ready, self._pending[:] = list(self._pending), []
        return self._write(ready)

    def _write(self, ready: list[Second]) -> int:
        with self._io_lock:
            for sec in ready:
                for s in sec.pending_samples:
                    sec.sample_raw += len(s)
                    # The shipper sends a payload raw when zstd does not shrink it; count the same way.
                    sec.sample_zstd += min(len(s), len(self._zstd.compress(s)))
                sec.pending_samples = []
                self.writer.append(sec)
            self.records_written += len(ready)
        return len(ready)

    def _run(self) -> None:
        while not self._stop.wait(1.0 - (self.clock() % 1.0) + 0.01):
            try:
                self.tick()
            except Exception:  # keep profiling; the tap must not die because of the profiler
                log.exception("profile recorder: could not append to %s", self.writer.path)

    def start(self) -> "ProfileRecorder":
        self._thread = threading.Thread(target=self._run, name="profile-recorder", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the thread, write the open second and idle time up to now, fsync."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        now = int(self.clock())
        with self._lock:
            self._acc.roll(now + 1)
            ready, self._pending[:] = list(self._pending), []
        self._write(ready)
        self.writer.close()

    def status(self) -> dict:
        return {"profile": str(self.writer.path), "records_written": self.records_written,
                "samples_dropped": self.samples_dropped,
                "locality_early_rotations": self._tracker.early_rotations}

    def __enter__(self) -> "ProfileRecorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
