"""Builders shared by retention and recovery tests."""

from __future__ import annotations

import random

from shared.frames import Kind, Record, data_record, encode_batch


def bookmark(volume: str, seq: int, ts: int, name: str) -> Record:
    return Record(volume, seq, ts, 0, 0, Kind.BOOKMARK, payload=name.encode())


def random_records(n: int, volumes=("disk0",), size: int = 1 << 20, start: int = 1, seed: int = 1,
                   ts0: int = 1_000_000_000) -> list[Record]:
    """n records with random DATA / ZEROES / TRIM / BOOKMARK, sequences start.."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        seq = start + i
        vol = rng.choice(volumes)
        ts = ts0 + seq * 1000
        r = rng.random()
        off = rng.randrange(0, size // 512) * 512
        length = min(size - off, rng.choice([512, 4096, 8192, 65536]))
        if r < 0.7:
            data = bytes(rng.getrandbits(8) for _ in range(16)) * (length // 16) if rng.random() < 0.5 \
                else rng.randbytes(length)
            out.append(data_record(vol, seq, ts, off, data))
        elif r < 0.8:
            out.append(Record(vol, seq, ts, off, length, Kind.ZEROES))
        elif r < 0.9:
            out.append(Record(vol, seq, ts, off, length, Kind.TRIM))
        else:
            out.append(bookmark(vol, seq, ts, f"bm-{seq}"))
    return out


def batches_of(records: list[Record], per: int) -> list[bytes]:
    return [encode_batch(records[i: i + per]) for i in range(0, len(records), per)]
