"""Base images (synthetic fulls) and the tenant-wide chunk store.

Format (fixed for every reader: recovery, instant access, verify):

* base ``groups/<g>/bases/<seq:020d>.json`` = ``{"sequence": S, "timestamp_ns": T,
  "chunk_size": C, "volumes": {vol: {"size": n, "chunks": [id-or-null, ...]}},
  "points_ns": [H, ...]}``: the group's volumes exactly as they were after
  record S (T = that record's timestamp). ``null`` is an all-zero chunk;
  the last chunk of a volume may be shorter than C. ``points_ns`` lists the
  retained policy points (hour/day boundaries) this base stands for: every
  time t with T <= t <= max(points_ns) has this state.
* chunk ``chunks/<id[:2]>/<id>``, id = hex SHA-256 of the plaintext chunk,
  body zstd-compressed. Content addressing makes a put idempotent and
  deduplicates across the bases and volumes of a tenant.

The state at point P = the newest base with sequence <= P, plus the journal
records with sequence in (base.sequence, P].

A base document is written only after all its chunks are durable, so a base
that can be listed is complete.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field

import zstandard

from shared import keys
from shared.errors import DialbackError
from shared.inflate import inflate
from shared.objectstore import ObjectNotFound, ObjectStore

DEFAULT_CHUNK_SIZE = 1 << 20
MAX_CHUNK_SIZE = 64 << 20  # largest chunk_size a base may have (retention_chunk_size's bound)


class BaseError(DialbackError):
    """A base document or chunk is malformed, missing or fails its digest; the message names the object."""


@dataclass(frozen=True)
class VolumeChunks:
    size: int
    chunks: tuple[str | None, ...]


@dataclass(frozen=True)
class Base:
    group: str
    sequence: int
    timestamp_ns: int
    chunk_size: int
    volumes: dict[str, VolumeChunks]
    points_ns: tuple[int, ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        return keys.base_key(self.group, self.sequence)

    def chunk_ids(self) -> set[str]:
        return {c for v in self.volumes.values() for c in v.chunks if c is not None}

    def to_json(self) -> bytes:
        return json.dumps({
            "sequence": self.sequence, "timestamp_ns": self.timestamp_ns, "chunk_size": self.chunk_size,
            "volumes": {v: {"size": vc.size, "chunks": list(vc.chunks)} for v, vc in sorted(self.volumes.items())},
            "points_ns": sorted(set(self.points_ns)),
        }, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, group: str, raw: bytes, where: str = "base") -> "Base":
        try:
            doc = json.loads(raw)
            vols = {str(v): VolumeChunks(int(d["size"]), tuple(None if c is None else str(c) for c in d["chunks"]))
                    for v, d in doc["volumes"].items()}
            base = cls(group, int(doc["sequence"]), int(doc["timestamp_ns"]), int(doc["chunk_size"]), vols,
                       tuple(int(p) for p in doc.get("points_ns", [])))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise BaseError(f"{where} is not a valid base image document: {err!r}") from err
        for v, vc in base.volumes.items():
            if not 0 < base.chunk_size <= MAX_CHUNK_SIZE or len(vc.chunks) != -(-vc.size // base.chunk_size):
                raise BaseError(f"{where}: volume {v!r} of {vc.size} bytes lists {len(vc.chunks)} chunks "
                                f"of {base.chunk_size} bytes")
        return base

    def last_valid_ns(self) -> int:
        """The latest time known to still have this state (its newest policy point, else its own write)."""
        return max((self.timestamp_ns, *self.points_ns))


# --- chunks ----------------------------------------------------------------

_local = threading.local()


def _cctx() -> zstandard.ZstdCompressor:
    if not hasattr(_local, "c"):
        _local.c = zstandard.ZstdCompressor(level=3)
    return _local.c


def chunk_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_zero(data: bytes | bytearray | memoryview) -> bool:
    return not any(data) if len(data) < 64 else data == bytes(len(data))


def put_chunk(store: ObjectStore, bucket: str, data: bytes, known: set[str] | None = None) -> str | None:
    """Store a chunk (once: an existing id is not rewritten); None for an all-zero chunk.

    ``known`` caches ids already known to exist, saving a stat per chunk.
    """
    if is_zero(data):
        return None
    cid = chunk_id(data)
    if known is not None and cid in known:
        return cid
    key = keys.chunk_key(cid)
    if not store.exists(bucket, key):
        store.put(bucket, key, _cctx().compress(data))
    if known is not None:
        known.add(cid)
    return cid


def read_chunk(store: ObjectStore, bucket: str, cid: str, verify: bool = True, length: int | None = None) -> bytes:
    """A chunk's plaintext, checked against its id (BaseError when missing or corrupt).

    It inflates to at most ``length`` bytes (the chunk's size in its base; default
    MAX_CHUNK_SIZE): a larger (or bomb) chunk is a BaseError, never a large allocation.
    """
    key = keys.chunk_key(cid)
    try:
        body = store.get(bucket, key)
    except ObjectNotFound as err:
        raise BaseError(f"chunk {bucket}/{key} is missing: the base referencing it cannot be restored; "
                        "run 'dialback verify' to list affected points") from err
    data = inflate(body, MAX_CHUNK_SIZE if length is None else length, BaseError, f"chunk {bucket}/{key}")
    if verify and chunk_id(data) != cid:
        raise BaseError(f"chunk {bucket}/{key} does not match its SHA-256: the object is corrupt")
    return data


def read_volume_chunk(store: ObjectStore, bucket: str, base: Base, volume: str, index: int) -> bytes:
    """Chunk ``index`` of a volume in a base, zeroes included (length = chunk_size, shorter at the end)."""
    vc = base.volumes[volume]
    length = min(base.chunk_size, vc.size - index * base.chunk_size)
    cid = vc.chunks[index]
    if cid is None:
        return bytes(length)
    data = read_chunk(store, bucket, cid, length=length)
    if len(data) != length:
        raise BaseError(f"chunk {cid} of {volume!r} in {base.key} holds {len(data)} bytes, expected {length}")
    return data


# --- base documents --------------------------------------------------------

def list_base_sequences(store: ObjectStore, bucket: str, group: str) -> list[int]:
    """Sequences of the group's bases, ascending (from key names alone)."""
    out = []
    for info in store.list(bucket, keys.bases_prefix(group)):
        if info.key.endswith(".json"):
            try:
                out.append(keys.parse_base_key(info.key))
            except ValueError as err:
                raise BaseError(f"{bucket}/{info.key} is not a base name; move it out of "
                                f"{keys.bases_prefix(group)}") from err
    return sorted(out)


def read_base(store: ObjectStore, bucket: str, group: str, sequence: int) -> Base:
    key = keys.base_key(group, sequence)
    return Base.from_json(group, store.get(bucket, key), f"{bucket}/{key}")


def read_bases(store: ObjectStore, bucket: str, group: str) -> list[Base]:
    """Every base of the group, ascending; a base removed while listing is skipped."""
    out = []
    for s in list_base_sequences(store, bucket, group):
        try:
            out.append(read_base(store, bucket, group, s))
        except ObjectNotFound:
            continue
    return out


def latest_base_at(store: ObjectStore, bucket: str, group: str, seq: int) -> Base | None:
    """The newest base with sequence <= seq, or None."""
    for s in reversed(list_base_sequences(store, bucket, group)):
        if s <= seq:
            try:
                return read_base(store, bucket, group, s)
            except ObjectNotFound:
                continue  # removed by GC while we listed: an older one may still serve
    return None


def put_base(store: ObjectStore, bucket: str, base: Base) -> None:
    """Write the base document; its chunks must already be durable."""
    store.put(bucket, base.key, base.to_json())


def read_range(store: ObjectStore, bucket: str, base: Base, volume: str, offset: int, length: int) -> bytes:
    """``length`` bytes of ``volume`` from ``offset`` as the base holds them (for readers such as NBD exports)."""
    size = base.volumes[volume].size
    if offset < 0 or length < 0 or offset + length > size:
        raise BaseError(f"range {offset}+{length} is outside volume {volume!r} ({size} bytes)")
    c, out = base.chunk_size, []
    pos, end = offset, offset + length
    while pos < end:
        i = pos // c
        data = read_volume_chunk(store, bucket, base, volume, i)
        lo = pos - i * c
        take = min(end - pos, len(data) - lo)
        out.append(data[lo: lo + take])
        pos += take
    return b"".join(out)
