"""Instant access: time to first byte and sequential read over NBD of a 1 GiB volume with history; prints JSON.

History in MinIO, written with retention's segment writer and shared.bases:
an initial sync of the whole volume (compressible-ish data, as bench.recover),
a base at the end of the sync, then random overwrites with a new base after
every ``--base-every`` overwritten bytes (what retention's rollup produces on
its schedule). Two points are exported through the recovery service's
ExportRegistry (the code behind POST /v1/groups/{g}/exports):

* ``newest``: the latest point (newest base + the journal after it);
* ``old``: a point in the first base interval (first base + part of the journal after it).

Each export is measured cold (fresh registry and planner cache). Per point: ``open_s`` (plan + lease + block map + NBD listen), ``first_read_s``
(NBD connect + handshake + first 4 KiB read), ``ttfb_s`` (the sum: request to
first byte), and ``seq_read_MBps`` (1 MiB NBD reads over the whole volume).

    .venv/bin/python -m bench.instant_access --start-minio [--verify]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import tempfile
import time

from agent.nbd.client import connect
from bench.recover import compressible
from bench.common import close_store, open_store
from services.recovery.instant.registry import ExportRegistry
from services.recovery.planner import At
from services.recovery.service import Recovery
from services.retention.journaler import Journaler
from shared import bases as B
from shared import keys
from shared.frames import Kind, Record, data_record, encode_batch
from shared.journal import INITIAL_SYNC_BOOKMARK, manifest_doc
from shared.objectstore.cached import CachedObjectStore

GROUP, VOL = "g1", "disk0"


def put_base(store, bucket: str, seq: int, ts: int, model: bytearray, chunk: int, known: set[str]) -> None:
    ids = tuple(B.put_chunk(store, bucket, bytes(model[o: o + chunk]), known) for o in range(0, len(model), chunk))
    B.put_base(store, bucket, B.Base(GROUP, seq, ts, chunk, {VOL: B.VolumeChunks(len(model), ids)}))


def build(store, tenant: str, size: int, overwrite: float, base_every: float, seed: int) -> dict:
    rng = random.Random(seed)
    j = Journaler(store, max_bytes=8 << 20, compress=True)
    bucket = j.bucket(tenant)
    store.put(bucket, keys.manifest_key(GROUP), manifest_doc(GROUP, {VOL: size}))
    model = bytearray(size)
    seq, ts, pending, known = 0, time.time_ns(), [], set()
    out = {"bases": [], "overwrite_bytes": 0}

    def flush_batch(force: bool = False) -> None:
        if pending:
            j.offer(tenant, GROUP, encode_batch(pending), None)
            pending.clear()
        if force or j.full(tenant, GROUP):
            j.flush(tenant, GROUP)

    def emit(rec: Record) -> None:
        pending.append(rec)
        if sum(r.length for r in pending) >= 768 << 10 or rec.kind == Kind.BOOKMARK:
            flush_batch()

    for off in range(0, size, 256 << 10):
        seq += 1
        data = compressible(rng, min(256 << 10, size - off))
        model[off: off + len(data)] = data
        emit(data_record(VOL, seq, ts + seq, off, data))
    seq += 1
    emit(Record(VOL, seq, ts + seq, 0, 0, Kind.BOOKMARK, payload=INITIAL_SYNC_BOOKMARK.encode()))
    flush_batch(force=True)
    put_base(store, bucket, seq, ts + seq, model, B.DEFAULT_CHUNK_SIZE, known)
    out["bases"].append(seq)
    since_base = 0
    while out["overwrite_bytes"] < overwrite * size:
        seq += 1
        n = rng.choice([4096, 16384, 65536])
        off = rng.randrange(0, (size - n) // 4096 + 1) * 4096
        data = compressible(rng, n)
        model[off: off + n] = data
        emit(data_record(VOL, seq, ts + seq, off, data))
        out["overwrite_bytes"] += n
        since_base += n
        if since_base >= base_every * size and out["overwrite_bytes"] < overwrite * size:
            flush_batch(force=True)
            put_base(store, bucket, seq, ts + seq, model, B.DEFAULT_CHUNK_SIZE, known)
            out["bases"].append(seq)
            since_base = 0
    flush_batch(force=True)
    out.update(latest=seq, journal_bytes=j.stats["bytes"], segments=j.stats["segments"],
               newest_sha256=hashlib.sha256(model).hexdigest())
    return out


def measure(store, tenant: str, at: At, size: int, read_bytes: int) -> dict:
    """One export, cold: a fresh registry and planner cache, built as the recovery app builds them."""
    reg = ExportRegistry(Recovery(CachedObjectStore(store)), work_dir=tempfile.mkdtemp(prefix="dialback-bench-"))
    t0 = time.perf_counter()
    exp = reg.create(tenant, GROUP, VOL, at, "read-only")
    t1 = time.perf_counter()
    h = hashlib.sha256()
    try:
        with connect("127.0.0.1", exp.port, exp.export_name) as c:
            first = c.pread(4096, 0)
            t2 = time.perf_counter()
            h.update(first)
            pos, step, t3 = 4096, 1 << 20, time.perf_counter()
            end = min(size, read_bytes)
            while pos < end:
                h.update(c.pread(min(step, end - pos), pos))
                pos += step
            t4 = time.perf_counter()
    finally:
        reg.close(tenant, exp.id)
        reg.close_all()
    bmap = exp.backend.map
    return {"sequence": exp.sequence, "base_sequence": bmap.base.sequence if bmap.base else 0,
            "segments_mapped": bmap.segments, "segment_bytes_mapped": bmap.segment_bytes,
            "journal_extents": len(bmap.extents), "open_s": round(t1 - t0, 4), "map_s": round(exp.map_seconds, 4),
            "first_read_s": round(t2 - t1, 4), "ttfb_s": round(t2 - t0, 4),
            "seq_read_bytes": end - 4096, "seq_read_MBps": round((end - 4096) / (t4 - t3) / 1e6, 1),
            "range_gets": exp.backend.range_gets, "sha256": h.hexdigest() if end == size else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1 << 30, help="volume bytes (default 1 GiB)")
    ap.add_argument("--overwrite", type=float, default=0.10, help="fraction of the volume overwritten after sync")
    ap.add_argument("--base-every", type=float, default=0.04, help="a base after this fraction overwritten")
    ap.add_argument("--read-bytes", type=int, default=None, help="bytes read sequentially (default: all)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--verify", action="store_true", help="compare the newest point's sha256 with the model")
    ap.add_argument("--start-minio", action="store_true", help="start a throwaway MinIO (tests/servers.py)")
    args = ap.parse_args(argv)
    server, store, endpoint = open_store(args.start_minio)
    tenant = f"bench{random.randrange(10**6):06d}"
    bucket = f"dialback-{tenant}"
    try:
        t0 = time.perf_counter()
        built = build(store, tenant, args.size, args.overwrite, args.base_every, args.seed)
        build_s = time.perf_counter() - t0
        b0 = built["bases"][0]
        old = b0 + (built["bases"][1] - b0 if len(built["bases"]) > 1 else built["latest"] - b0) * 3 // 4
        read = args.read_bytes or args.size
        result = {"bench": "instant_access", "endpoint": endpoint, "volume_bytes": args.size,
                  "overwrite_bytes": built["overwrite_bytes"], "journal_bytes": built["journal_bytes"],
                  "segments": built["segments"], "bases": built["bases"], "build_seconds": round(build_s, 1),
                  "cpus": os.cpu_count(),
                  "newest": measure(store, tenant, At.of(sequence=built["latest"]), args.size, read),
                  "old": measure(store, tenant, At.of(sequence=old), args.size, read)}
        if args.verify:
            result["verified"] = result["newest"]["sha256"] == built["newest_sha256"]
        print(json.dumps(result, indent=2))
        return 0 if result.get("verified", True) else 1
    finally:
        close_store(store, bucket, server)


if __name__ == "__main__":
    sys.exit(main())
