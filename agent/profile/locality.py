"""Overwrite locality: how much of a write lands on blocks written recently.

Two generations of block-number sets, rotated every ``window_s`` seconds: a
block counts as "recent" when it is in either, i.e. written between
``window_s`` and ``2 * window_s`` seconds ago at most. Exact sliding windows
would need a timestamp per block; this keeps each write to two C-level set
operations and memory bounded by ``max_blocks`` (past it the generations
rotate early, which only shortens the window, and is reported).
"""

from __future__ import annotations


class LocalityTracker:
    def __init__(self, block_size: int = 4096, window_s: int = 3600, max_blocks: int = 4_000_000):
        if block_size <= 0 or block_size & (block_size - 1):
            raise ValueError(f"locality block size must be a power of two, got {block_size}")
        self.block_size = block_size
        self.window_s = window_s
        self.max_blocks = max_blocks
        self._shift = block_size.bit_length() - 1
        self._cur: set[int] = set()
        self._prev: set[int] = set()
        self._gen_start: int | None = None
        self.early_rotations = 0

    def touch(self, offset: int, length: int, now_s: int) -> int:
        """Record a write; return how many of its bytes hit recently written blocks.

        Partial edge blocks count as whole blocks, capped at ``length``: a
        4 KiB-aligned workload (nearly all of them) is counted exactly.
        """
        if length <= 0:
            return 0
        if self._gen_start is None:
            self._gen_start = now_s
        elif now_s - self._gen_start >= self.window_s:
            self._rotate(now_s)
        blocks = range(offset >> self._shift, ((offset + length - 1) >> self._shift) + 1)
        hits = self._cur.intersection(blocks)
        if self._prev:
            hits |= self._prev.intersection(blocks)
        self._cur.update(blocks)
        if len(self._cur) > self.max_blocks:
            self.early_rotations += 1
            self._rotate(now_s)
        return min(length, len(hits) * self.block_size)

    def _rotate(self, now_s: int) -> None:
        self._prev, self._cur = self._cur, set()
        self._gen_start = now_s
