"""Write-record frame codec, version 1.

A *batch* is what an agent ships to ingest and what ingest publishes to Kafka:
a fixed header followed by records. Every record carries the volume it
belongs to, its sequence (gap-free per protection group), the time of the
write in nanoseconds, the byte offset and length on the disk, its kind
(data, zeroes, trim, bookmark), the codec of its payload and a CRC32C over
the record's header fields and payload.

Layout (all integers little-endian)::

    batch  := header record*
    header := magic "DBWB" | version u8 | reserved u8 | reserved u16
              | count u32 | body_len u32 | header_crc u32          (20 bytes)
    record := volume_len u8 | volume bytes
              | sequence u64 | timestamp_ns u64 | offset u64 | length u32
              | kind u8 | codec u8 | payload_len u32 | crc32c u32 | payload

`header_crc` covers the first 16 bytes of the header. A record's `crc32c`
covers its bytes from `volume_len` up to `payload_len` inclusive, then its
payload. A whole batch is at most :data:`MAX_BATCH_BYTES`, and a DATA record
declares at most :data:`MAX_RECORD_BYTES`: a raw one must fit in a batch, so a
compressed one may not claim more (ZEROES and TRIM lengths describe a range
and carry no payload, so they are not capped). zstd payloads inflate through
:func:`shared.inflate.inflate`, bounded by the declared length.

Decoding never raises anything but :class:`FrameError` (and its subclasses):
a truncated, oversized or corrupted frame names what is wrong.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Iterable, Sequence

import crc32c as _crc32c
import zstandard

from shared.inflate import inflate

MAGIC = b"DBWB"
VERSION = 1
MAX_BATCH_BYTES = 1 << 20
MAX_RECORD_BYTES = MAX_BATCH_BYTES  # largest length a DATA record may declare
MAX_VOLUME_ID = 64

_HEADER = struct.Struct("<4sBBHII")  # magic, version, reserved, reserved, count, body_len
_HEADER_CRC = struct.Struct("<I")
HEADER_SIZE = _HEADER.size + _HEADER_CRC.size
_REC_FIXED = struct.Struct("<QQQIBBI")  # seq, ts, offset, length, kind, codec, payload_len
_REC_CRC = struct.Struct("<I")
_MIN_RECORD = 1 + _REC_FIXED.size + _REC_CRC.size

_crc = _crc32c.crc32c


class FrameError(ValueError):
    """A frame cannot be decoded; the message says what and where."""


class TruncatedFrame(FrameError):
    pass


class OversizedFrame(FrameError):
    pass


class CorruptFrame(FrameError):
    pass


class UnsupportedVersion(FrameError):
    pass


class Kind(enum.IntEnum):
    DATA = 0
    ZEROES = 1
    TRIM = 2
    BOOKMARK = 3  # payload is the bookmark's UTF-8 name; length is 0


class Codec(enum.IntEnum):
    RAW = 0
    ZSTD = 1


@dataclass(frozen=True, slots=True)
class Record:
    """One captured write (or bookmark).

    ``payload`` is the encoded payload. Decoded records hold a read-only
    memoryview into the batch they came from (zero copy); it keeps that
    buffer alive. Use :meth:`data` for the decoded bytes.
    """

    volume: str
    sequence: int
    timestamp_ns: int
    offset: int
    length: int
    kind: Kind
    codec: Codec = Codec.RAW
    payload: bytes | memoryview = b""

    def data(self) -> bytes:
        """The decoded payload: the bytes written (DATA) or the bookmark name."""
        if self.codec == Codec.RAW:
            return bytes(self.payload)
        # A DATA record inflates to exactly its length; anything else at most to a record's cap.
        limit = self.length if self.kind == Kind.DATA else MAX_RECORD_BYTES
        out = inflate(self.payload, min(limit, MAX_RECORD_BYTES), CorruptFrame,
                      f"record seq {self.sequence}: zstd payload")
        if self.kind == Kind.DATA and len(out) != self.length:
            raise CorruptFrame(
                f"record seq {self.sequence}: payload decompresses to {len(out)} bytes, header says {self.length}"
            )
        return out

    @property
    def end(self) -> int:
        return self.offset + self.length


def data_record(volume: str, sequence: int, timestamp_ns: int, offset: int, data: bytes,
                compress: bool = False, level: int = 1) -> Record:
    """A DATA record; with ``compress`` the payload is zstd when that is smaller."""
    payload, codec = bytes(data), Codec.RAW
    if compress and data:
        packed = zstandard.ZstdCompressor(level=level).compress(data)
        if len(packed) < len(data):
            payload, codec = packed, Codec.ZSTD
    return Record(volume, sequence, timestamp_ns, offset, len(data), Kind.DATA, codec, payload)


def record_size(rec: Record) -> int:
    return 1 + len(rec.volume.encode()) + _REC_FIXED.size + _REC_CRC.size + len(rec.payload)


def _check_record(rec: Record) -> bytes:
    vol = rec.volume.encode()
    if not 0 < len(vol) <= MAX_VOLUME_ID:
        raise FrameError(f"volume id must be 1..{MAX_VOLUME_ID} bytes, got {len(vol)}")
    if rec.kind == Kind.DATA and rec.length > MAX_RECORD_BYTES:
        raise OversizedFrame(f"record seq {rec.sequence}: DATA length {rec.length} is over the "
                             f"{MAX_RECORD_BYTES}-byte record limit; split the write")
    if rec.kind in (Kind.DATA,) and rec.codec == Codec.RAW and len(rec.payload) != rec.length:
        raise FrameError(f"record seq {rec.sequence}: raw payload is {len(rec.payload)} bytes, length says {rec.length}")
    if rec.kind in (Kind.ZEROES, Kind.TRIM) and rec.payload:
        raise FrameError(f"record seq {rec.sequence}: {rec.kind.name} records carry no payload")
    return vol


def record_parts(rec: Record) -> tuple[bytes, bytes | memoryview]:
    """A record's encoding as (fixed fields and CRC32C, payload), the payload not copied."""
    vol = _check_record(rec)
    fixed = bytes([len(vol)]) + vol + _REC_FIXED.pack(
        rec.sequence, rec.timestamp_ns, rec.offset, rec.length, int(rec.kind), int(rec.codec), len(rec.payload)
    )
    return fixed + _REC_CRC.pack(_crc(rec.payload, _crc(fixed))), rec.payload


def batch_head(count: int, body_len: int) -> bytes:
    """The 20-byte batch header (with its CRC) for ``count`` records in ``body_len`` bytes."""
    head = _HEADER.pack(MAGIC, VERSION, 0, 0, count, body_len)
    return head + _HEADER_CRC.pack(_crc(head))


def encode_batch(records: Sequence[Record] | Iterable[Record]) -> bytes:
    """Encode records into one batch; raises OversizedFrame past MAX_BATCH_BYTES."""
    parts: list[bytes | memoryview] = []
    count = 0
    size = HEADER_SIZE
    for rec in records:
        fixed, payload = record_parts(rec)
        parts += (fixed, payload)
        size += len(fixed) + len(payload)
        count += 1
        if size > MAX_BATCH_BYTES:
            raise OversizedFrame(f"batch would be over {MAX_BATCH_BYTES} bytes at record {count}")
    return b"".join([batch_head(count, size - HEADER_SIZE), *parts])


def decode_header(buf: bytes | memoryview) -> tuple[int, int]:
    """Validate a batch header; returns (record count, body length)."""
    if len(buf) < HEADER_SIZE:
        raise TruncatedFrame(f"batch is {len(buf)} bytes, shorter than its {HEADER_SIZE}-byte header")
    if len(buf) > MAX_BATCH_BYTES:
        raise OversizedFrame(f"batch is {len(buf)} bytes, over the {MAX_BATCH_BYTES}-byte limit")
    mv = memoryview(buf)
    magic, version, _r1, _r2, count, body_len = _HEADER.unpack_from(mv, 0)
    if magic != MAGIC:
        raise CorruptFrame(f"bad magic {bytes(magic)!r} at offset 0, expected {MAGIC!r}")
    (hcrc,) = _HEADER_CRC.unpack_from(mv, _HEADER.size)
    if _crc(mv[: _HEADER.size]) != hcrc:
        raise CorruptFrame("batch header CRC32C mismatch at offset 0")
    if version != VERSION:
        raise UnsupportedVersion(f"frame version {version} is not supported (this codec reads version {VERSION})")
    if HEADER_SIZE + body_len != len(buf):
        kind = TruncatedFrame if HEADER_SIZE + body_len > len(buf) else CorruptFrame
        raise kind(f"header says body is {body_len} bytes, batch carries {len(buf) - HEADER_SIZE}")
    if count * _MIN_RECORD > body_len:
        raise CorruptFrame(f"header says {count} records, body of {body_len} bytes cannot hold them")
    return count, body_len


def decode_batch(buf: bytes | memoryview) -> list[Record]:
    """Decode and verify a whole batch (header CRC and every record's CRC32C)."""
    count, _ = decode_header(buf)
    mv = memoryview(buf)
    end = len(mv)
    pos = HEADER_SIZE
    out: list[Record] = []
    unpack_fixed = _REC_FIXED.unpack_from
    for i in range(count):
        start = pos
        if pos + _MIN_RECORD > end:
            raise TruncatedFrame(f"record {i} at offset {start}: truncated header")
        vlen = mv[pos]
        if not 0 < vlen <= MAX_VOLUME_ID:
            raise CorruptFrame(f"record {i} at offset {start}: volume id length {vlen} out of range")
        pos += 1
        if pos + vlen + _REC_FIXED.size + _REC_CRC.size > end:
            raise TruncatedFrame(f"record {i} at offset {start}: truncated header")
        vol_bytes = mv[pos: pos + vlen]
        pos += vlen
        seq, ts, offset, length, kind, codec, plen = unpack_fixed(mv, pos)
        pos += _REC_FIXED.size
        fixed_end = pos
        (crc,) = _REC_CRC.unpack_from(mv, pos)
        pos += _REC_CRC.size
        if pos + plen > end:
            raise TruncatedFrame(f"record {i} at offset {start}: payload of {plen} bytes runs past the batch end")
        payload = mv[pos: pos + plen]
        pos += plen
        if _crc(payload, _crc(mv[start:fixed_end])) != crc:
            raise CorruptFrame(f"record {i} at offset {start}: CRC32C mismatch")
        try:
            kind_e, codec_e = Kind(kind), Codec(codec)
            volume = str(vol_bytes, "utf-8")
        except ValueError as err:
            raise CorruptFrame(f"record {i} at offset {start}: {err}") from err
        if kind_e == Kind.DATA and length > MAX_RECORD_BYTES:
            raise OversizedFrame(f"record {i} at offset {start}: DATA length {length} is over the "
                                 f"{MAX_RECORD_BYTES}-byte record limit")
        if kind_e == Kind.DATA and codec_e == Codec.RAW and plen != length:
            raise CorruptFrame(f"record {i} at offset {start}: raw payload {plen} bytes, length {length}")
        if kind_e in (Kind.ZEROES, Kind.TRIM) and plen:
            raise CorruptFrame(f"record {i} at offset {start}: {kind_e.name} record carries a payload")
        out.append(Record(volume, seq, ts, offset, length, kind_e, codec_e, payload))
    if pos != end:
        raise CorruptFrame(f"{end - pos} trailing bytes after record {count - 1} at offset {pos}")
    return out
