"""Apply records to images in sequence order (tests, checks, small restores).

This is the reference meaning of a record stream: DATA writes its bytes,
ZEROES and TRIM make the range read as zeroes, BOOKMARK changes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from shared.frames import Kind, Record

_ZERO = bytes(1 << 20)


def apply_records(records: Iterable[Record], images: dict[str, str | Path], upto: int | None = None) -> int:
    """Apply records (ascending, gap-free) to existing image files; returns the last sequence applied."""
    fds = {v: os.open(p, os.O_RDWR) for v, p in images.items()}
    last = 0
    try:
        for rec in records:
            if upto is not None and rec.sequence > upto:
                break
            if last and rec.sequence != last + 1:
                raise ValueError(f"gap in records: {last} then {rec.sequence}")
            last = rec.sequence
            if rec.kind == Kind.BOOKMARK:
                continue
            fd = fds[rec.volume]
            if rec.kind == Kind.DATA:
                os.pwrite(fd, rec.data(), rec.offset)
            else:
                pos, end = rec.offset, rec.end
                while pos < end:
                    n = min(len(_ZERO), end - pos)
                    os.pwrite(fd, _ZERO[:n], pos)
                    pos += n
    finally:
        for fd in fds.values():
            os.close(fd)
    return last
