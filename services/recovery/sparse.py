"""Sparse image files.

An image starts as a file of the volume's size with no blocks allocated:
it reads as zeroes, so zeroed and trimmed ranges need no I/O at all (the
synthesizer applies newest writes first and never writes a byte twice).
"""

from __future__ import annotations

import os


def create(path: str | os.PathLike, size: int) -> int:
    """Open ``path`` as a new sparse file of ``size`` bytes (all zeroes); returns the fd."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    os.ftruncate(fd, size)
    return fd
