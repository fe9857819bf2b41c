"""Decompression bombs for tests: tiny zstd payloads that inflate to far more than a record may hold.

The encoder here packs records by hand (shared.frames refuses to build them), so a test
can hand any decoder exactly what a hostile agent or a tampered object could send.
"""

from __future__ import annotations

import struct
import tracemalloc
from contextlib import contextmanager
from functools import lru_cache

import crc32c
import zstandard

from shared.frames import Codec, Kind, batch_head

BOMB_BYTES = 256 << 20
_FIXED = struct.Struct("<QQQIBBI")


@lru_cache(maxsize=8)
def bomb_payload(size: int = BOMB_BYTES, content_size: bool = True) -> bytes:
    """Zeroes compressed at level 3: 256 MiB -> about 8 KB; optionally without a declared content size."""
    return zstandard.ZstdCompressor(level=3, write_content_size=content_size).compress(bytes(size))


def raw_record(volume: str, seq: int, offset: int, length: int, payload: bytes,
               kind: Kind = Kind.DATA, codec: Codec = Codec.ZSTD, ts: int | None = None) -> bytes:
    """One record's encoding, CRC correct, with whatever length the caller claims."""
    vol = volume.encode()
    fixed = bytes([len(vol)]) + vol + _FIXED.pack(seq, 1_000 + seq if ts is None else ts, offset, length,
                                                   int(kind), int(codec), len(payload))
    return fixed + struct.pack("<I", crc32c.crc32c(payload, crc32c.crc32c(fixed))) + payload


def raw_batch(*records: bytes) -> bytes:
    body = b"".join(records)
    return batch_head(len(records), len(body)) + body


def bomb_batch(seq: int = 1, volume: str = "disk0", declared: int = BOMB_BYTES, content_size: bool = True,
               inflated: int = BOMB_BYTES) -> bytes:
    """A one-record batch whose DATA record declares ``declared`` bytes and inflates to ``inflated``."""
    return raw_batch(raw_record(volume, seq, 0, declared, bomb_payload(inflated, content_size)))


@contextmanager
def peak_growth():
    """Yields a list that holds, after the block, the peak Python-heap growth in bytes during it."""
    out: list[int] = []
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    try:
        yield out
    finally:
        _, peak = tracemalloc.get_traced_memory()
        out.append(peak - base)
        if started:
            tracemalloc.stop()
