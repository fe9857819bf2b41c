"""Turn a time-ordered stream of writes into per-second profile records.

Shared by the live recorder and the trace importers so both count the same
way: IOPS, bytes by kind, the size histogram and overwrite locality.
"""

from __future__ import annotations

from typing import Callable

from agent.profile.format import N_BUCKETS, Second, bucket_of
from agent.profile.locality import LocalityTracker

DATA, ZEROES, TRIM = "data", "zeroes", "trim"
KINDS = (DATA, ZEROES, TRIM)


class SecondBuilder:
    """Counters of one second, filled write by write."""

    __slots__ = ("time", "iops", "write_bytes", "zero_bytes", "trim_bytes", "overwrite_bytes",
                 "sample_raw", "sample_zstd", "hist", "samples")

    def __init__(self, time: int):
        self.time = time
        self.iops = self.write_bytes = self.zero_bytes = self.trim_bytes = self.overwrite_bytes = 0
        self.sample_raw = self.sample_zstd = 0
        self.hist = [0] * N_BUCKETS
        self.samples: list[bytes] = []  # payloads still to compress (the recorder does it off the write path)

    def freeze(self) -> Second:
        return Second(self.time, 1, self.iops, self.write_bytes, self.zero_bytes, self.trim_bytes,
                      self.overwrite_bytes, self.sample_raw, self.sample_zstd, tuple(self.hist), self.samples)


class Accumulator:
    """Feed writes in time order; finished seconds go to ``sink`` (idle runs as one span record)."""

    def __init__(self, sink: Callable[[Second], None], tracker: LocalityTracker):
        self.sink = sink
        self.tracker = tracker
        self.current: SecondBuilder | None = None
        self.next_time: int | None = None  # first second not yet emitted

    def add(self, t: int, offset: int, length: int, kind: str = DATA) -> SecondBuilder:
        """Count one write at second ``t``; returns the second's builder (for sampling).

        A write stamped before the open second (clock jitter, trace events a
        few microseconds out of order) is counted in the open second: records
        never go back in time.
        """
        cur = self.current
        if cur is not None and t <= cur.time:
            t = cur.time
        else:
            if self.next_time is not None and t < self.next_time:
                t = self.next_time
            self.roll(t)
            cur = self.current = SecondBuilder(t)
        cur.iops += 1
        cur.hist[bucket_of(length)] += 1
        if kind == DATA:
            cur.write_bytes += length
            cur.overwrite_bytes += self.tracker.touch(offset, length, t)
        elif kind == ZEROES:
            cur.zero_bytes += length
            self.tracker.touch(offset, length, t)
        elif kind == TRIM:
            cur.trim_bytes += length
        else:
            raise ValueError(f"unknown write kind {kind!r}; expected one of {KINDS}")
        return cur

    def roll(self, upto: int, flush_idle: bool = True) -> SecondBuilder | None:
        """Close every second before ``upto``; returns the closed busy second, if any.

        With ``flush_idle`` the idle seconds up to ``upto`` are written too
        (as one span record); without it they stay pending, so a live
        recorder does not write one idle record per second.
        """
        closed = None
        cur = self.current
        if cur is not None and cur.time < upto:
            closed = cur
            self.current = None
            self.emit(cur)
        if flush_idle and self.current is None and self.next_time is not None and self.next_time < upto:
            self.sink(Second(self.next_time, upto - self.next_time))
            self.next_time = upto
        return closed

    def emit(self, b: SecondBuilder) -> None:
        if self.next_time is not None and b.time > self.next_time:
            self.sink(Second(self.next_time, b.time - self.next_time))
        self.sink(b.freeze())
        self.next_time = b.time + 1

    def start(self, t: int) -> None:
        """Mark ``t`` as the first second observed: idle time from here on is recorded, not a gap."""
        if self.next_time is None:
            self.next_time = t
