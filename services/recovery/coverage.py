"""Byte ranges already final in an image being rebuilt newest-write-first.

Synthesis applies the journal backwards: the newest write of a byte wins, so
a byte written once needs no older write. ``claim`` returns the parts of a
range nobody newer has written and marks the whole range as written.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right


class Coverage:
    def __init__(self) -> None:
        # Disjoint, sorted, non-adjacent half-open intervals [starts[i], ends[i]).
        self.starts: list[int] = []
        self.ends: list[int] = []

    def claim(self, start: int, end: int) -> list[tuple[int, int]]:
        """Uncovered sub-ranges of [start, end), in order; then [start, end) is covered."""
        if end <= start:
            return []
        starts, ends = self.starts, self.ends
        # Intervals touching [start, end] (adjacent ones merge too).
        lo = bisect_left(ends, start)
        hi = bisect_right(starts, end)
        free: list[tuple[int, int]] = []
        pos = start
        for i in range(lo, hi):
            s, e = starts[i], ends[i]
            if s > pos:
                free.append((pos, min(s, end)))
            pos = max(pos, e)
            if pos >= end:
                break
        if pos < end:
            free.append((pos, end))
        new_s = min(start, starts[lo]) if lo < hi else start
        new_e = max(end, ends[hi - 1]) if lo < hi else end
        starts[lo:hi] = [new_s]
        ends[lo:hi] = [new_e]
        return free

    def covered_bytes(self) -> int:
        return sum(e - s for s, e in zip(self.starts, self.ends))
