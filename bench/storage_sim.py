"""A protected volume over simulated days, shared by the storage benchmarks.

An initial sync of the whole volume, then ``churn`` of the volume rewritten
per simulated day in ``block``-sized writes at random aligned offsets, spread
evenly over each hour. Every write goes (a) into the journal in MinIO through
retention's own writer (services.retention.journaler.Journaler; Kafka and
ingest are not in this path: they do not change what is stored) and (b) into
a local copy of the volume (the reference, and what restic backs up).
After each simulated hour the retention job (rollup + GC) runs with the
simulated clock, exactly as the retention service would.

Data: half random, half repeated text per 2 KiB (compressible like real
disks); both Dialback and restic compress with zstd.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from services.retention.job import run_tenant
from services.retention.journaler import Journaler
from services.retention.policy import HOUR_NS
from shared import keys
from shared.frames import Kind, Record, data_record
from shared.journal import INITIAL_SYNC_BOOKMARK, manifest_doc, pack_batches

FILL = (b"Dialback continuous data protection benchmark text. " * 40)[:2048]
DAY0_NS = 20_400 * 24 * HOUR_NS  # a UTC midnight


def compressible(rng: random.Random, n: int) -> bytes:
    rnd = rng.randbytes(max(1, n // 2))
    return b"".join(rnd[i: i + 2048] + FILL for i in range(0, n // 2, 2048))[:n]


@dataclass
class Workload:
    store: object
    tenant: str
    group: str
    size: int
    image: Path
    churn: float = 0.05
    block: int = 64 << 10
    chunk_size: int = 1 << 20
    seed: int = 1
    seq: int = 0
    t0: int = DAY0_NS
    job_seconds: float = 0.0
    journal_seconds: float = 0.0
    points: dict[int, int] = field(default_factory=dict)  # time -> sequence at that time

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.j = Journaler(self.store, max_bytes=8 << 20, compress=True, clock=lambda: 0.0)
        self.bucket = self.j.bucket(self.tenant)
        self.store.put(self.bucket, keys.manifest_key(self.group), manifest_doc(self.group, {"disk0": self.size}))
        self.fd = os.open(self.image, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.ftruncate(self.fd, self.size)

    def _journal(self, recs: list[Record]) -> None:
        t = time.perf_counter()
        for b in pack_batches(recs):
            self.j.offer(self.tenant, self.group, b, None)
            if self.j.full(self.tenant, self.group):
                self.j.flush(self.tenant, self.group)
        self.j.flush(self.tenant, self.group)
        self.journal_seconds += time.perf_counter() - t

    def _write(self, ts: int, off: int, data: bytes) -> Record:
        self.seq += 1
        os.pwrite(self.fd, data, off)
        return data_record("disk0", self.seq, ts, off, data)

    def initial_sync(self, piece: int = 256 << 10) -> None:
        ts = self.t0 - 60 * 10**9
        recs: list[Record] = []
        for off in range(0, self.size, piece):
            recs.append(self._write(ts, off, compressible(self.rng, min(piece, self.size - off))))
            if len(recs) >= 64:
                self._journal(recs)
                recs = []
        self.seq += 1
        recs.append(Record("disk0", self.seq, ts, 0, 0, Kind.BOOKMARK, payload=INITIAL_SYNC_BOOKMARK.encode()))
        self._journal(recs)
        self.points[self.t0] = self.seq

    def hour(self, h: int) -> int:
        """Writes of simulated hour ``h`` (timestamps in [t0 + h, t0 + h + 1)); returns the hour's end."""
        start = self.t0 + h * HOUR_NS
        n = max(1, round(self.churn * self.size / 24 / self.block))
        recs = []
        for i in range(n):
            ts = start + (i + 1) * HOUR_NS // (n + 1)
            off = self.rng.randrange(0, (self.size - self.block) // 4096 + 1) * 4096
            recs.append(self._write(ts, off, compressible(self.rng, self.block)))
        self._journal(recs)
        end = start + HOUR_NS
        self.points[end] = self.seq
        return end

    def run_job(self, now_ns: int):
        t = time.perf_counter()
        res = run_tenant(self.store, self.bucket, now_ns=now_ns, chunk_size=self.chunk_size)
        self.job_seconds += time.perf_counter() - t
        return res

    def digest(self) -> str:
        os.fsync(self.fd)
        return file_sha256(self.image)

    def close(self) -> None:
        os.close(self.fd)


def file_sha256(path: Path, chunk: int = 8 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def bucket_bytes(store, bucket: str, prefix: str = "") -> tuple[int, int]:
    """(bytes, objects) stored under a prefix."""
    n = size = 0
    for info in store.list(bucket, prefix):
        n += 1
        size += info.size
    return size, n
