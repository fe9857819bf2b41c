"""A simulated protected group: random writes over simulated days, journaled the way retention does,
with a reference model of every volume at any sequence."""

from __future__ import annotations

import bisect
import random

from shared import keys
from shared.frames import Kind, Record, data_record
from shared.journal import INITIAL_SYNC_BOOKMARK, manifest_doc
from services.retention.journaler import Journaler
from services.retention.policy import HOUR_NS
from tests.services.retention.helpers import bookmark


class SimGroup:
    def __init__(self, store, tenant: str, group: str, volumes: dict[str, int], t0: int, seed: int = 7) -> None:
        self.store, self.tenant, self.group, self.volumes = store, tenant, group, volumes
        self.rng = random.Random(seed)
        self.records: list[Record] = []
        self.seq = 0
        self.now = t0
        self.j = Journaler(store, compress=True, clock=lambda: 0.0)
        self.bucket = self.j.bucket(tenant)
        store.put(self.bucket, keys.manifest_key(group), manifest_doc(group, volumes))
        self._token = 0

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def initial_sync(self, piece: int = 256 << 10) -> None:
        recs = []
        for v, size in sorted(self.volumes.items()):
            for off in range(0, size, piece):
                n = min(piece, size - off)
                # Repeated 4 KiB blocks: some chunks deduplicate, as real disks do.
                data = self.rng.randbytes(4096) * (n // 4096) if self.rng.random() < 0.5 else self.rng.randbytes(n)
                recs.append(data_record(v, self._next(), self.now, off, data))
        recs.append(bookmark(sorted(self.volumes)[0], self._next(), self.now, INITIAL_SYNC_BOOKMARK))
        self._journal(recs)

    def advance(self, until: int, mean_gap_ns: int) -> None:
        """Random writes (DATA, ZEROES, TRIM, bookmarks) with timestamps up to ``until``, flushed hourly."""
        recs: list[Record] = []
        hour_end = (self.now // HOUR_NS + 1) * HOUR_NS
        while True:
            t = self.now + self.rng.randrange(1, 2 * mean_gap_ns)
            if t > until:
                break
            if t >= hour_end:
                self._journal(recs)
                recs, hour_end = [], (t // HOUR_NS + 1) * HOUR_NS
            self.now = t
            v = self.rng.choice(sorted(self.volumes))
            size = self.volumes[v]
            length = self.rng.choice([512, 4096, 16384, 65536, 100_000])
            off = self.rng.randrange(0, (size - length) // 512) * 512
            r = self.rng.random()
            if r < 0.8:
                recs.append(data_record(v, self._next(), t, off, self.rng.randbytes(length)))
            elif r < 0.88:
                recs.append(Record(v, self._next(), t, off, length, Kind.ZEROES))
            elif r < 0.96:
                recs.append(Record(v, self._next(), t, off, length, Kind.TRIM))
            else:
                recs.append(bookmark(v, self._next(), t, f"bm-{self.seq}"))
        self._journal(recs)
        self.now = until

    def _journal(self, recs: list[Record]) -> None:
        if not recs:
            return
        self.records += recs
        from shared.journal import pack_batches
        for b in pack_batches(recs):
            self.j.offer(self.tenant, self.group, b, self._token)
            self._token += 1
        self.j.flush(self.tenant, self.group)

    def seq_at(self, t: int) -> int:
        """Last sequence with timestamp <= t (0 = none)."""
        ts = [r.timestamp_ns for r in self.records]
        i = bisect.bisect_right(ts, t)
        return self.records[i - 1].sequence if i else 0

    def reference(self, through: int) -> dict[str, bytes]:
        disks = {v: bytearray(s) for v, s in self.volumes.items()}
        for r in self.records:
            if r.sequence > through:
                break
            if r.kind == Kind.DATA:
                disks[r.volume][r.offset: r.end] = r.data()
            elif r.kind in (Kind.ZEROES, Kind.TRIM):
                disks[r.volume][r.offset: r.end] = bytes(r.length)
        return {v: bytes(d) for v, d in disks.items()}
