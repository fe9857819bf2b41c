"""Per-volume chunk bitmap of regions written while the spool was full."""

from __future__ import annotations

import re
import threading

_NONZERO = re.compile(rb"[^\x00]")


class DirtyMap:
    def __init__(self, size: int, chunk: int):
        self.size = size
        self.chunk = chunk
        self.chunks = (size + chunk - 1) // chunk
        self._bits = bytearray((self.chunks + 7) // 8)
        self._count = 0
        self._lock = threading.Lock()

    def mark(self, offset: int, length: int) -> None:
        if length <= 0:
            return
        first, last = offset // self.chunk, min((offset + length - 1) // self.chunk, self.chunks - 1)
        with self._lock:
            for c in range(first, last + 1):
                byte, bit = divmod(c, 8)
                if not self._bits[byte] & (1 << bit):
                    self._bits[byte] |= 1 << bit
                    self._count += 1

    def mark_all(self) -> None:
        self.mark(0, self.size)

    def clear(self, index: int) -> None:
        byte, bit = divmod(index, 8)
        with self._lock:
            if self._bits[byte] & (1 << bit):
                self._bits[byte] &= ~(1 << bit) & 0xFF
                self._count -= 1

    def next_dirty(self, start: int = 0) -> int | None:
        """Index of the first dirty chunk at or after start, or None."""
        with self._lock:
            if not self._count:
                return None
            byte = start // 8
            while True:
                m = _NONZERO.search(self._bits, byte)
                if m is None:
                    return None
                byte = m.start()
                for bit in range(8):
                    c = byte * 8 + bit
                    if c >= start and self._bits[byte] & (1 << bit):
                        return c
                byte += 1

    def __len__(self) -> int:
        return self._count
