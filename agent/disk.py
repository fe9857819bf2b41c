"""A protected volume's backing file or block device.

Plain positional I/O on one file descriptor. Zeroing punches holes in
regular files (cheap, reads back as zeroes) and falls back to writing zero
buffers where the filesystem or device cannot.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import stat
import struct
from pathlib import Path

_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_BLKZEROOUT = 0x127F
_ZERO_BUF = bytes(1 << 20)
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


class Disk:
    """Backing storage of one volume. Not locked: callers serialise writes."""

    def __init__(self, name: str, path: str | Path):
        self.name = name
        self.path = Path(path)
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as err:
            raise OSError(err.errno, f"cannot open volume {name!r} backing {self.path}: {err.strerror}; "
                                     "check the path and that the agent may read and write it") from err
        st = os.fstat(self.fd)
        self.is_block = stat.S_ISBLK(st.st_mode)
        self.size = os.lseek(self.fd, 0, os.SEEK_END) if self.is_block else st.st_size

    def read(self, offset: int, length: int) -> bytes:
        data = os.pread(self.fd, length, offset)
        if len(data) < length:  # a short read past a sparse tail still means zeroes
            data += bytes(length - len(data))
        return data

    def write(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.pwrite(self.fd, view, offset)
            view, offset = view[n:], offset + n

    def zero(self, offset: int, length: int, punch: bool = True) -> None:
        """Make [offset, offset+length) read back as zeroes."""
        if length <= 0:
            return
        if not self.is_block and punch:
            if _libc.fallocate(self.fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length) == 0:
                return
        if self.is_block:
            try:
                fcntl.ioctl(self.fd, _BLKZEROOUT, struct.pack("QQ", offset, length))
                return
            except OSError:
                pass
        end = offset + length
        while offset < end:
            n = min(len(_ZERO_BUF), end - offset)
            self.write(offset, _ZERO_BUF[:n])
            offset += n

    def next_data(self, offset: int) -> int:
        """Start of the next allocated byte at or after offset (size when none).

        Regular files only report holes truthfully; for anything else every
        byte counts as data, which is merely slower, never wrong.
        """
        if self.is_block:
            return offset
        try:
            return os.lseek(self.fd, offset, os.SEEK_DATA)
        except OSError as err:
            if err.errno == errno.ENXIO:
                return self.size
            return offset

    def sync(self) -> None:
        os.fdatasync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
