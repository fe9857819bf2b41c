"""Read-only NBD backend over a BlockMap: fetch only what a read needs, keep a little of it.

Journal bytes: per segment a read touches, one ``get_range`` per run of
nearby payloads it still needs (gaps under ``MERGE_GAP`` are read through),
then zstd-decoded into a bytes-bounded LRU keyed by (segment, position).
Base bytes: whole chunks through shared.bases (verified against their ids)
into a small LRU. Thread-safe: the NBD server runs one thread per connection.
"""

from __future__ import annotations

import errno
import logging
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor

from services.recovery.instant.blockmap import BlockMap, Extent, record_payload
from shared import bases as B
from shared.errors import DialbackError
from shared.frames import Codec
from shared.inflate import inflate
from shared.journal import JournalError

log = logging.getLogger(__name__)
MERGE_GAP = 256 << 10


class _Lru:
    def __init__(self, limit_bytes: int) -> None:
        self.limit, self.used = limit_bytes, 0
        self.items: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            val = self.items.get(key)
            if val is not None:
                self.items.move_to_end(key)
            return val

    def put(self, key, val: bytes) -> None:
        with self.lock:
            if key in self.items:
                return
            self.items[key] = val
            self.used += len(val)
            while self.used > self.limit and len(self.items) > 1:
                _, old = self.items.popitem(last=False)
                self.used -= len(old)


class PointBackend:
    """NBD ExportBackend (agent/nbd/server.py) serving a BlockMap; read-only."""

    read_only = True

    def __init__(self, store, bucket: str, bmap: BlockMap, name: str | None = None,
                 cache_bytes: int = 64 << 20, base_chunks: int = 16, readahead: int = 4) -> None:
        self.store, self.bucket, self.map = store, bucket, bmap
        self.name = name or bmap.volume
        self.size = bmap.size
        self._payloads = _Lru(cache_bytes)
        chunk = bmap.base.chunk_size if bmap.base is not None else 1 << 20
        self._chunks = _Lru(base_chunks * chunk)
        self.range_gets = 0
        self.readahead = readahead
        self._lock = threading.Lock()
        self._inflight: dict[int, Future] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False

    # -- journal payloads ----------------------------------------------------
    def _decode(self, e: Extent, encoded: bytes) -> bytes:
        stored = record_payload(encoded, e)
        if e.codec != Codec.ZSTD:
            return bytes(stored)
        data = inflate(stored, e.rec_length, JournalError, f"{e.segment}: payload at {e.pos}")
        if len(data) != e.rec_length:
            raise JournalError(f"{e.segment}: payload at {e.pos} decompresses to {len(data)} bytes, "
                               f"expected {e.rec_length}")
        return data

    def _load(self, needed: list[Extent]) -> dict[tuple[str, int], bytes]:
        got: dict[tuple[str, int], bytes] = {}
        missing: dict[str, dict[int, Extent]] = {}
        for e in needed:
            key = (e.segment, e.pos)
            if key in got:
                continue
            val = self._payloads.get(key)
            if val is not None:
                got[key] = val
            else:
                missing.setdefault(e.segment, {})[e.pos] = e
        for seg, by_pos in missing.items():
            runs: list[list[Extent]] = []
            for pos in sorted(by_pos):
                e = by_pos[pos]
                if runs and pos - (runs[-1][-1].pos + runs[-1][-1].stored) <= MERGE_GAP:
                    runs[-1].append(e)
                else:
                    runs.append([e])
            for run in runs:
                lo, hi = run[0].pos, run[-1].pos + run[-1].stored
                blob = self.store.get_range(self.bucket, seg, lo, hi - lo)
                self.range_gets += 1
                if len(blob) != hi - lo:
                    raise JournalError(f"{seg}: short read {len(blob)} of {hi - lo} bytes at {lo}")
                for e in run:
                    data = self._decode(e, blob[e.pos - lo: e.pos - lo + e.stored])
                    self._payloads.put((seg, e.pos), data)
                    got[(seg, e.pos)] = data
        return got

    # -- base chunks ---------------------------------------------------------
    def _chunk(self, i: int) -> bytes:
        data = self._chunks.get(i)
        if data is not None:
            return data
        with self._lock:
            fut = self._inflight.get(i)
        if fut is not None:
            return fut.result()
        data = B.read_volume_chunk(self.store, self.bucket, self.map.base, self.map.volume, i)
        self._chunks.put(i, data)
        return data

    def _fetch_chunk(self, i: int) -> bytes:
        try:
            data = B.read_volume_chunk(self.store, self.bucket, self.map.base, self.map.volume, i)
            self._chunks.put(i, data)
            return data
        finally:
            with self._lock:
                self._inflight.pop(i, None)

    def _read_ahead(self, first: int, end: int) -> None:
        """Fetch the next chunks in the background (a sequential reader finds them decoded)."""
        vc = self.map.base.volumes[self.map.volume]
        with self._lock:
            if self._closed:
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="export-readahead")
            for i in range(first, min(end, len(vc.chunks))):
                if vc.chunks[i] is None or i in self._inflight or self._chunks.get(i) is not None:
                    continue
                self._inflight[i] = self._pool.submit(self._fetch_chunk, i)

    def _base_bytes(self, a: int, b: int, out: bytearray, offset: int) -> None:
        base = self.map.base
        if base is None:
            return  # zeroes: the buffer already holds them
        c = base.chunk_size
        pos = a
        while pos < b:
            i = pos // c
            data = self._chunk(i)
            self._read_ahead(i + 1, i + 1 + self.readahead)
            lo, hi = pos - i * c, min(b, (i + 1) * c) - i * c
            out[pos - offset: pos - offset + hi - lo] = data[lo:hi]
            pos += hi - lo

    # -- ExportBackend -------------------------------------------------------
    def read(self, offset: int, length: int) -> bytes:
        try:
            return self._read(offset, length)
        except DialbackError as err:  # the client gets EIO for this request; the connection stays up
            log.error("instant-access read %d+%d of %s failed: %s", offset, length, self.name, err)
            raise OSError(errno.EIO, str(err)) from err

    def _read(self, offset: int, length: int) -> bytes:
        buf = bytearray(length)
        parts = self.map.lookup(offset, length)
        payloads = self._load([e for e in parts if e.segment])
        for e in parts:
            a, b = max(e.start, offset), min(e.end, offset + length)
            if e.segment is None:
                self._base_bytes(a, b, buf, offset)
            elif e.segment:
                data = payloads[(e.segment, e.pos)]
                buf[a - offset: b - offset] = data[a - e.rec_offset: b - e.rec_offset]
            # segment == "": zeroes/trim in the journal; the buffer already holds zeroes
        return bytes(buf)

    def write(self, offset: int, data: bytes) -> None:
        raise OSError(errno.EPERM, "read-only export: create it with mode 'overlay' to write")

    def trim(self, offset: int, length: int) -> None:
        self.write(offset, b"")

    def zeroes(self, offset: int, length: int, no_hole: bool) -> None:
        self.write(offset, b"")

    def flush(self) -> None:
        pass

    def close(self) -> None:
        with self._lock:
            self._closed, pool = True, self._pool
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
