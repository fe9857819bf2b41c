"""Import write records in the agent's own framing as a profile.

Reads ``u32 little-endian length | v1 batch`` entries: the agent's spool
segments (``<first_seq>.seg``) and retention's journal segments use that
layout. Records carry payloads, so compressibility is measured: payloads
the agent already compressed give their exact ratio, raw ones are sampled
and compressed here (one every ``sample_every_bytes``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import zstandard

from agent.profile.accumulate import DATA, TRIM, ZEROES, Accumulator
from agent.profile.format import Header, ProfileCorrupt, ProfileError
from agent.profile.locality import LocalityTracker
from agent.profile.writer import ProfileWriter
from shared.frames import Codec, FrameError, Kind, decode_batch

_LEN = struct.Struct("<I")
_KINDS = {Kind.DATA: DATA, Kind.ZEROES: ZEROES, Kind.TRIM: TRIM}


@dataclass
class FramesStats:
    batches: int = 0
    records_in: int = 0
    records: int = 0
    torn_tail: str = ""


def segment_files(path: str) -> list[Path]:
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("*.seg"))
        if not files:
            raise ProfileError(f"{path}: no *.seg files in this directory; point at a spool group directory")
        return files
    return [p]


def import_frames_file(path: str, out: str, server: str, volume: str | None = None,
                       sample_every_bytes: int = 1 << 20, zstd_level: int = 1) -> FramesStats:
    files = segment_files(path)
    stats = FramesStats()
    zc = zstandard.ZstdCompressor(level=zstd_level)
    countdown = 0
    header = Header(server, volume or "disk0", 0, 4096, 3600, zstd_level, 0)
    with ProfileWriter(out, header, fsync_every_s=10**9) as w:
        def sink(sec):
            w.append(sec)
            stats.records += 1
        acc = Accumulator(sink, LocalityTracker())
        last_t = None
        for i, f in enumerate(files):
            try:
                buf = f.read_bytes()
            except OSError as err:
                raise ProfileError(f"{f}: cannot read: {err.strerror or err}") from err
            pos = 0
            while pos < len(buf):
                torn = pos + 4 > len(buf) or pos + 4 + _LEN.unpack_from(buf, pos)[0] > len(buf)
                if torn:
                    if i != len(files) - 1:
                        raise ProfileCorrupt(f"{f}: entry at offset {pos} runs past the end of a segment that "
                                             "is not the newest; the spool is damaged")
                    stats.torn_tail = f"{f}: torn final entry at offset {pos} ignored"
                    break
                (n,) = _LEN.unpack_from(buf, pos)
                try:
                    recs = decode_batch(memoryview(buf)[pos + 4: pos + 4 + n])
                except FrameError as err:
                    raise ProfileCorrupt(f"{f}: batch at offset {pos}: {err}") from err
                stats.batches += 1
                for r in recs:
                    kind = _KINDS.get(r.kind)
                    if kind is None or (volume is not None and r.volume != volume):
                        continue
                    stats.records_in += 1
                    t = r.timestamp_ns // 1_000_000_000
                    if last_t is None:
                        acc.start(t)
                    last_t = t
                    b = acc.add(t, r.offset, r.length, kind)
                    if kind != DATA:
                        continue
                    if r.codec == Codec.ZSTD:
                        b.sample_raw += r.length
                        b.sample_zstd += len(r.payload)
                        continue
                    countdown -= r.length
                    if countdown <= 0:
                        countdown = sample_every_bytes
                        b.sample_raw += r.length
                        b.sample_zstd += min(r.length, len(zc.compress(r.payload)))
                pos += 4 + n
        if last_t is None:
            raise ProfileError(f"{path}: no write records found")
        acc.roll(last_t + 1)
    return stats
