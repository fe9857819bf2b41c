"""Workload profile file, version 1: one fixed-size record per second.

A profile is what the analyzer reads to size bandwidth and storage. It must
survive weeks of recording, a crash mid-write and a copy over a bad link, so
it is append-only, fixed-size and checksummed per record.

Layout (all integers little-endian)::

    file   := header record*
    header := magic "DBPF" | version u16 | header_len u16 | record_len u16
              | n_buckets u16 | block_size u32 | locality_window_s u32
              | volume_size u64 | created_unix u64
              | server utf-8 (64 bytes, NUL padded) | volume utf-8 (64 bytes)
              | zstd_level i32 | reserved (28 bytes) | header_crc32c u32   (208 bytes)
    record := time u64 | span u32 | iops u32 | write_bytes u64
              | zero_bytes u64 | trim_bytes u64 | overwrite_bytes u64
              | sample_raw u32 | sample_zstd u32 | hist u32 * 16 | crc32c u32 (128 bytes)

``time`` is the Unix second the record starts at; ``span`` is how many
seconds it covers. Busy seconds have span 1; a run of idle seconds while the
recorder was running is one record with span N and zero counters, which keeps
an idle server's profile small. Seconds covered by no record are *gaps*: the
recorder was not running, so nothing is known about them.

``write_bytes`` counts payload-bearing writes (DATA); ``zero_bytes`` and
``trim_bytes`` change the disk but ship no payload. ``overwrite_bytes`` is the
part of ``write_bytes`` that rewrote blocks written within the last
``locality_window_s``. ``sample_raw``/``sample_zstd`` are the sizes of the
payloads that were sampled and their zstd-compressed sizes. ``hist[i]``
counts writes of size <= 512 << i bytes (the last bucket: everything larger).

Reading tolerates a torn final record (a crash while appending) and reports
it; any damage before the end is refused with the byte offset.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import crc32c as _crc32c

MAGIC = b"DBPF"
VERSION = 1
N_BUCKETS = 16
NAME_BYTES = 64

_HEADER = struct.Struct("<4sHHHHIIQQ64s64si28s")
HEADER_SIZE = _HEADER.size + 4
_RECORD = struct.Struct("<QIIQQQQII16I")
RECORD_SIZE = _RECORD.size + 4

_crc = _crc32c.crc32c


class ProfileError(ValueError):
    """A profile file cannot be read; the message names the file and offset."""


class ProfileCorrupt(ProfileError):
    pass


class ProfileUnsupported(ProfileError):
    pass


def bucket_of(length: int) -> int:
    """Histogram bucket of a write: 0 for <= 512 B, i for <= 512 << i, 15 above 8 MiB."""
    return min(N_BUCKETS - 1, max(0, (length - 1).bit_length() - 9))


def bucket_label(i: int) -> str:
    size = 512 << i
    text = f"{size // 1024} KiB" if size < 1 << 20 else f"{size >> 20} MiB"
    return f"> {(512 << (i - 1)) >> 20} MiB" if i == N_BUCKETS - 1 else f"<= {text}" if i else "<= 512 B"


@dataclass(frozen=True)
class Header:
    server: str
    volume: str = "disk0"
    volume_size: int = 0  # bytes; 0 when unknown (e.g. imported traces)
    block_size: int = 4096  # granularity of the overwrite-locality tracker
    locality_window_s: int = 3600
    zstd_level: int = 1
    created_unix: int = 0

    def encode(self) -> bytes:
        server, volume = self.server.encode(), self.volume.encode()
        if not 0 < len(server) <= NAME_BYTES or len(volume) > NAME_BYTES:
            raise ProfileError(f"server and volume names must be 1..{NAME_BYTES} bytes of UTF-8")
        body = _HEADER.pack(MAGIC, VERSION, HEADER_SIZE, RECORD_SIZE, N_BUCKETS, self.block_size,
                            self.locality_window_s, self.volume_size, self.created_unix,
                            server, volume, self.zstd_level, b"")
        return body + struct.pack("<I", _crc(body))

    @classmethod
    def decode(cls, buf: bytes, where: str = "profile") -> "Header":
        if len(buf) < HEADER_SIZE:
            raise ProfileCorrupt(f"{where}: file is {len(buf)} bytes, shorter than the {HEADER_SIZE}-byte "
                                 "header; it is not a finished profile (was the recorder killed at start?)")
        fields = _HEADER.unpack_from(buf, 0)
        magic, version, hlen, rlen, nb, block, window, vsize, created, server, volume, level, _ = fields
        if magic != MAGIC:
            raise ProfileCorrupt(f"{where}: offset 0: bad magic {magic!r}, expected {MAGIC!r}; "
                                 "not a Dialback profile (import traces with `dialback profile-import`)")
        (crc,) = struct.unpack_from("<I", buf, _HEADER.size)
        if _crc(buf[: _HEADER.size]) != crc:
            raise ProfileCorrupt(f"{where}: offset 0: header CRC32C mismatch; the header is damaged")
        if version != VERSION or hlen != HEADER_SIZE or rlen != RECORD_SIZE or nb != N_BUCKETS:
            raise ProfileUnsupported(f"{where}: profile version {version} (header {hlen} B, record {rlen} B) "
                                     f"is not readable by this analyzer (version {VERSION}); upgrade Dialback")
        try:
            names = server.rstrip(b"\0").decode(), volume.rstrip(b"\0").decode()
        except UnicodeDecodeError as err:
            raise ProfileCorrupt(f"{where}: offset 0: server/volume name is not UTF-8") from err
        return cls(names[0], names[1], vsize, block, window, level, created)


@dataclass
class Second:
    """Counters for one record (``span`` seconds starting at ``time``)."""

    time: int
    span: int = 1
    iops: int = 0
    write_bytes: int = 0
    zero_bytes: int = 0
    trim_bytes: int = 0
    overwrite_bytes: int = 0
    sample_raw: int = 0
    sample_zstd: int = 0
    hist: tuple[int, ...] = (0,) * N_BUCKETS
    # Payloads sampled for compressibility and not yet compressed; not stored.
    pending_samples: list[bytes] = field(default_factory=list, repr=False)

    def encode(self) -> bytes:
        if len(self.hist) != N_BUCKETS:
            raise ProfileError(f"histogram must have {N_BUCKETS} buckets, got {len(self.hist)}")
        body = _RECORD.pack(self.time, self.span, min(self.iops, 0xFFFFFFFF), self.write_bytes,
                            self.zero_bytes, self.trim_bytes, self.overwrite_bytes,
                            min(self.sample_raw, 0xFFFFFFFF), min(self.sample_zstd, 0xFFFFFFFF),
                            *(min(h, 0xFFFFFFFF) for h in self.hist))
        return body + struct.pack("<I", _crc(body))


def record_crc_ok(buf: bytes | memoryview, offset: int) -> bool:
    (crc,) = struct.unpack_from("<I", buf, offset + _RECORD.size)
    return _crc(buf[offset: offset + _RECORD.size]) == crc


def decode_record(buf: bytes | memoryview, offset: int) -> Second:
    v = _RECORD.unpack_from(buf, offset)
    return Second(*v[:9], hist=tuple(v[9:]))
