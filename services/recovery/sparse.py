"""Sparse image files: create at a size, punch holes for zeroed/trimmed ranges."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_ZEROS = bytes(1 << 20)

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_fallocate = getattr(_libc, "fallocate", None)
if _fallocate is not None:
    _fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]


def create(path: str | os.PathLike, size: int) -> int:
    """Open ``path`` as a new sparse file of ``size`` bytes (all zeroes); returns the fd."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    os.ftruncate(fd, size)
    return fd


def zero_range(fd: int, offset: int, length: int) -> None:
    """Make [offset, offset+length) read as zeroes: punch a hole, or write zeroes where unsupported."""
    if length <= 0:
        return
    if _fallocate is not None and _fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length) == 0:
        return
    end = offset + length
    while offset < end:
        n = min(len(_ZEROS), end - offset)
        os.pwrite(fd, memoryview(_ZEROS)[:n], offset)
        offset += n
