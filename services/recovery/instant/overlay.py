"""Writable throwaway overlay over a read-only point backend.

Writes go to a sparse local temp file plus a per-block bitmap, never to the
object store; the file is deleted on close (unexport). Partial blocks are
filled from the base on first write (read-modify-write) so the bitmap stays
block-granular.
"""

from __future__ import annotations

import os
import tempfile
import threading

BLOCK = 4096


class OverlayBackend:
    read_only = False

    def __init__(self, base, work_dir: str | None = None):
        self.base, self.name, self.size = base, base.name, base.size
        fd, self.path = tempfile.mkstemp(prefix="dialback-overlay-", dir=work_dir)
        self.fd = fd
        os.ftruncate(fd, self.size)
        self.dirty = bytearray((self.size + BLOCK - 1) // BLOCK)
        # Clients may write over several connections (the server offers multi-conn): a partial-block
        # read-modify-write must not race another write into the same block.
        self._lock = threading.Lock()

    def _block(self, i: int) -> bytes:
        n = min(BLOCK, self.size - i * BLOCK)
        if self.dirty[i]:
            return os.pread(self.fd, n, i * BLOCK)
        return self.base.read(i * BLOCK, n)

    def read(self, offset: int, length: int) -> bytes:
        out, end, i = bytearray(), offset + length, offset // BLOCK
        while i * BLOCK < end:
            # Runs of clean blocks come from the base in one call.
            j = i
            while j * BLOCK < end and self.dirty[j] == self.dirty[i]:
                j += 1
            a, b = max(offset, i * BLOCK), min(end, j * BLOCK)
            out += os.pread(self.fd, b - a, a) if self.dirty[i] else self.base.read(a, b - a)
            i = j
        return bytes(out)

    def write(self, offset: int, data: bytes) -> None:
        with self._lock:
            self._write(offset, data)

    def _write(self, offset: int, data: bytes) -> None:
        # Fill partial blocks, write, and only then mark dirty: a concurrent reader sees old or new bytes.
        end = offset + len(data)
        blocks = range(offset // BLOCK, (end + BLOCK - 1) // BLOCK)
        for i in blocks:
            a, b = max(offset, i * BLOCK), min(end, (i + 1) * BLOCK)
            if not self.dirty[i] and (b - a) < min(BLOCK, self.size - i * BLOCK):
                os.pwrite(self.fd, self._block(i), i * BLOCK)
        os.pwrite(self.fd, bytes(data), offset)
        for i in blocks:
            self.dirty[i] = 1

    def trim(self, offset: int, length: int) -> None:
        self.zeroes(offset, length, True)

    def zeroes(self, offset: int, length: int, no_hole: bool) -> None:
        self.write(offset, bytes(length))

    def flush(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        """Delete the overlay file, then close the point backend below."""
        os.close(self.fd)
        os.unlink(self.path)
        if hasattr(self.base, "close"):
            self.base.close()
