"""Storage accounting: what a tenant protects (logical) and what it costs in the bucket (stored).

Per group and volume, from the bucket alone (docs/storage.md, "Storage accounting"):

* **logical bytes**: the size of the protected volumes (the group's manifest);
* **stored bytes**: the bytes of every object attributable to the group:
  journal segments, timeline entries, base documents, manifest and policy,
  plus its share of the tenant-wide chunks. A chunk referenced by several
  (group, volume) pairs is split evenly between them (the remainder goes to
  the first pair in name order), so the groups' shares add up exactly to the
  referenced chunks' bytes. Chunks no base references (garbage awaiting GC)
  and leases are the tenant's ``unattributed`` bytes. A volume's stored
  bytes are its chunk share plus the part of each segment its records'
  payloads take (by logical payload bytes);
* **compression ratio**: logical DATA payload bytes in the journal / stored
  segment bytes;
* **dedup ratio**: chunk references in all bases / distinct chunks.

Stored sizes are what the object store holds (ciphertext with the
encrypted store). Segments are immutable (keys = sequence ranges), so their
payload counts are cached by key across runs (:class:`SegmentCache`).
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from shared import bases as B
from shared import keys
from shared.frames import FrameError, Kind
from shared.journal import JournalError, iter_segment_records, read_manifest
from shared.objectstore import ObjectNotFound, ObjectStore, ObjectStoreError
from services.retention.gc import list_groups


@dataclass
class VolumeUsage:
    volume: str
    logical_bytes: int = 0
    stored_bytes: int = 0


@dataclass
class GroupUsage:
    group: str
    volumes: dict[str, VolumeUsage] = field(default_factory=dict)
    segment_bytes: int = 0      # journal segments, stored
    payload_bytes: int = 0      # logical DATA payload bytes those segments hold
    document_bytes: int = 0     # timeline entries, base documents, manifest, policy
    chunk_bytes: int = 0        # this group's share of the chunks
    chunk_refs: int = 0         # chunk references in the group's bases
    unique_chunks: int = 0      # distinct chunks those references name

    @property
    def logical_bytes(self) -> int:
        return sum(v.logical_bytes for v in self.volumes.values())

    @property
    def stored_bytes(self) -> int:
        return self.segment_bytes + self.document_bytes + self.chunk_bytes

    @property
    def compression_ratio(self) -> float | None:
        return self.payload_bytes / self.segment_bytes if self.segment_bytes else None

    @property
    def dedup_ratio(self) -> float | None:
        return self.chunk_refs / self.unique_chunks if self.unique_chunks else None

    def to_dict(self) -> dict:
        return {"group": self.group, "logical_bytes": self.logical_bytes, "stored_bytes": self.stored_bytes,
                "segment_bytes": self.segment_bytes, "payload_bytes": self.payload_bytes,
                "document_bytes": self.document_bytes, "chunk_bytes": self.chunk_bytes,
                "compression_ratio": _r(self.compression_ratio), "dedup_ratio": _r(self.dedup_ratio),
                "chunk_refs": self.chunk_refs, "unique_chunks": self.unique_chunks,
                "volumes": {v: {"logical_bytes": u.logical_bytes, "stored_bytes": u.stored_bytes}
                            for v, u in sorted(self.volumes.items())}}


@dataclass
class TenantUsage:
    bucket: str
    groups: dict[str, GroupUsage] = field(default_factory=dict)
    unattributed_bytes: int = 0  # unreferenced chunks, leases, anything outside a group's layout
    bucket_bytes: int = 0        # every object in the bucket
    damaged: list[str] = field(default_factory=list)  # keys that did not decode (counted, not analysed)

    @property
    def logical_bytes(self) -> int:
        return sum(g.logical_bytes for g in self.groups.values())

    @property
    def stored_bytes(self) -> int:
        return sum(g.stored_bytes for g in self.groups.values())

    def to_dict(self) -> dict:
        return {"bucket": self.bucket, "logical_bytes": self.logical_bytes, "stored_bytes": self.stored_bytes,
                "unattributed_bytes": self.unattributed_bytes, "bucket_bytes": self.bucket_bytes,
                "damaged": self.damaged,
                "groups": [g.to_dict() for _, g in sorted(self.groups.items())]}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


class SegmentCache:
    """segment key -> {volume: logical DATA payload bytes}; keys are immutable, so entries never go stale."""

    def __init__(self, limit: int = 200_000) -> None:
        self._d: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()
        self.limit = limit

    def payload(self, store: ObjectStore, bucket: str, key: str) -> dict[str, int] | None:
        """None when the segment is gone (GC) or does not decode (not cached: it may be repaired)."""
        with self._lock:
            hit = self._d.get(f"{bucket}/{key}")
        if hit is not None:
            return hit
        try:
            body = store.get(bucket, key)
        except ObjectStoreError:
            return None  # removed by GC while we listed, or unreadable (an encrypted object failing its tag)
        out: Counter[str] = Counter()
        try:
            for r in iter_segment_records(body, f"{bucket}/{key}"):
                out[r.volume] += r.length if r.kind == Kind.DATA else 0
        except (JournalError, FrameError):
            return None  # damaged: its bytes still count as stored; 'dialback verify' names it
        with self._lock:
            if len(self._d) >= self.limit:
                self._d.clear()
            self._d[f"{bucket}/{key}"] = dict(out)
        return dict(out)


def raw_sizes(store: ObjectStore, bucket: str, prefix: str) -> dict[str, int]:
    """Object key -> bytes the backend holds (below an encrypting wrapper: the ciphertext size)."""
    inner = getattr(store, "inner", store)
    return {i.key: i.size for i in inner.list(bucket, prefix)}


def measure_tenant(store: ObjectStore, bucket: str, cache: SegmentCache | None = None) -> TenantUsage:
    cache = cache or SegmentCache()
    sizes = raw_sizes(store, bucket, "")
    usage = TenantUsage(bucket, bucket_bytes=sum(sizes.values()))
    attributed: set[str] = set()
    refs: dict[str, list[tuple[str, str]]] = defaultdict(list)  # chunk key -> [(group, volume), ...] per reference
    for g in list_groups(store, bucket):
        gu = usage.groups[g] = GroupUsage(g)
        try:
            manifest = read_manifest(store, bucket, g) or {}
        except (JournalError, ObjectStoreError):
            manifest = {}
            usage.damaged.append(keys.manifest_key(g))
        for v, size in manifest.items():
            gu.volumes[v] = VolumeUsage(v, logical_bytes=size)
        prefix = keys.group_prefix(g)
        for key, size in sizes.items():
            if not key.startswith(prefix) or "/leases/" in key:
                continue
            attributed.add(key)
            if key.startswith(keys.journal_prefix(g)):
                gu.segment_bytes += size
                payload = cache.payload(store, bucket, key)
                if payload is None and store.exists(bucket, key):
                    usage.damaged.append(key)
                _segment_share(gu, payload or {}, size)
            else:
                gu.document_bytes += size
        ids: set[str] = set()
        for base in _bases(store, bucket, g, usage.damaged):
            for v, vc in base.volumes.items():
                for cid in vc.chunks:
                    if cid is not None:
                        refs[keys.chunk_key(cid)].append((g, v))
                        gu.chunk_refs += 1
                        ids.add(cid)
        gu.unique_chunks = len(ids)
    for ck, owners in refs.items():
        if ck not in sizes:
            continue  # missing chunk: 'dialback verify' reports it
        attributed.add(ck)
        pairs = sorted(set(owners))
        share, rest = divmod(sizes[ck], len(pairs))
        for n, (g, v) in enumerate(pairs):
            part = share + (rest if n == 0 else 0)
            usage.groups[g].chunk_bytes += part
            usage.groups[g].volumes.setdefault(v, VolumeUsage(v)).stored_bytes += part
    usage.unattributed_bytes = sum(s for k, s in sizes.items() if k not in attributed)
    return usage


def _bases(store: ObjectStore, bucket: str, group: str, damaged: list[str]) -> list[B.Base]:
    out = []
    for s in B.list_base_sequences(store, bucket, group):
        try:
            out.append(B.read_base(store, bucket, group, s))
        except ObjectNotFound:
            continue  # removed by GC while we listed
        except (B.BaseError, ObjectStoreError):
            damaged.append(keys.base_key(group, s))  # its chunks count as unattributed until repaired
    return out


def _segment_share(gu: GroupUsage, payload: dict[str, int], size: int) -> None:
    """Add a segment's payload and split its stored size between its volumes by payload (evenly if none)."""
    gu.payload_bytes += sum(payload.values())
    vols = sorted(payload) or sorted(gu.volumes)
    if not vols:
        return
    total = sum(payload.values())
    given = 0
    for n, v in enumerate(vols):
        part = size - given if n == len(vols) - 1 else (size * payload.get(v, 0) // total if total else size // len(vols))
        given += part
        gu.volumes.setdefault(v, VolumeUsage(v)).stored_bytes += part
