"""Recovery throughput: rebuild a volume from a journal in MinIO, print JSON.

The journal is written straight into MinIO by retention's own segment writer
(services.retention.journaler.Journaler): an initial sync of the whole volume
with compressible-ish data (half random, half text per 4 KiB), the
``dialback.initial-sync-complete`` bookmark, then random overwrites of a
fraction of the volume. Then recovery to a local file is timed end to end
(plan + fetch + decode + apply + rename). MB/s = volume bytes / seconds.

    # against a running MinIO (DIALBACK_S3_ENDPOINT / _ACCESS_KEY / _SECRET_KEY):
    .venv/bin/python -m bench.recover
    # or start a throwaway MinIO with the test helpers:
    .venv/bin/python -m bench.recover --start-minio --verify
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
from pathlib import Path

from bench.common import close_store, open_store
from services.recovery.planner import At
from services.recovery.service import Recovery, file_sha256
from services.retention.journaler import Journaler
from shared import keys
from shared.frames import Kind, Record, data_record, encode_batch
from shared.journal import INITIAL_SYNC_BOOKMARK, manifest_doc

FILL = (b"Dialback continuous data protection benchmark text. " * 40)[:2048]


def compressible(rng: random.Random, n: int) -> bytes:
    rnd = rng.randbytes(n // 2)
    return b"".join(rnd[i: i + 2048] + FILL for i in range(0, n // 2, 2048))


def build(store, tenant: str, group: str, size: int, record: int, overwrite: float, seed: int,
          model: bytearray | None) -> dict:
    rng = random.Random(seed)
    j = Journaler(store, max_bytes=8 << 20, compress=True)
    bucket = j.bucket(tenant)
    store.put(bucket, keys.manifest_key(group), manifest_doc(group, {"disk0": size}))
    seq, ts = 0, time.time_ns()
    pending: list[Record] = []
    stats = {"records": 0, "overwrite_bytes": 0}

    def emit(rec: Record) -> None:
        pending.append(rec)
        if sum(r.length for r in pending) >= 768 << 10 or rec.kind == Kind.BOOKMARK:
            flush_batch()

    def flush_batch() -> None:
        if pending:
            j.offer(tenant, group, encode_batch(pending), None)
            pending.clear()
            if j.full(tenant, group):
                j.flush(tenant, group)

    for off in range(0, size, record):
        seq += 1
        data = compressible(rng, min(record, size - off))
        if model is not None:
            model[off: off + len(data)] = data
        emit(data_record("disk0", seq, ts + seq, off, data))
    seq += 1
    emit(Record("disk0", seq, ts + seq, 0, 0, Kind.BOOKMARK, payload=INITIAL_SYNC_BOOKMARK.encode()))
    while stats["overwrite_bytes"] < overwrite * size:
        seq += 1
        n = rng.choice([4096, 16384, 65536])
        off = rng.randrange(0, (size - n) // 4096 + 1) * 4096
        data = compressible(rng, n)
        if model is not None:
            model[off: off + n] = data
        emit(data_record("disk0", seq, ts + seq, off, data))
        stats["overwrite_bytes"] += n
    flush_batch()
    j.flush(tenant, group)
    stats["records"] = seq
    stats["segments"] = j.stats["segments"]
    stats["journal_bytes"] = j.stats["bytes"]
    return stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1 << 30, help="volume bytes (default 1 GiB)")
    ap.add_argument("--record", type=int, default=256 << 10, help="initial-sync record size")
    ap.add_argument("--overwrite", type=float, default=0.10, help="fraction of the volume overwritten")
    ap.add_argument("--prefetch", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--verify", action="store_true", help="compare the image's SHA-256 with a model in memory")
    ap.add_argument("--start-minio", action="store_true", help="start a throwaway MinIO (tests/servers.py)")
    ap.add_argument("--work-dir", type=Path, default=None)
    args = ap.parse_args(argv)

    server, store, endpoint = open_store(args.start_minio)
    tenant = f"bench{random.randrange(10**6):06d}"
    group = "g1"
    try:
        model = bytearray(args.size) if args.verify else None
        t0 = time.perf_counter()
        built = build(store, tenant, group, args.size, args.record, args.overwrite, args.seed, model)
        build_s = time.perf_counter() - t0
        work = Path(args.work_dir or tempfile.mkdtemp(prefix="dialback-bench-"))
        work.mkdir(parents=True, exist_ok=True)
        out = work / "disk0.img"
        rec = Recovery(store, work_dir=work, prefetch=args.prefetch)
        t0 = time.perf_counter()
        plan = rec.plan(tenant, group, "disk0", At.of(sequence=built["records"]))
        res = rec.to_files(plan, {"disk0": out})
        recover_s = time.perf_counter() - t0
        result = {
            "bench": "recover", "endpoint": endpoint, "volume_bytes": args.size,
            "overwrite_fraction": args.overwrite, "overwrite_bytes": built["overwrite_bytes"],
            "records": built["records"], "segments": built["segments"], "journal_bytes": built["journal_bytes"],
            "build_seconds": round(build_s, 3), "recover_seconds": round(recover_s, 3),
            "recover_MBps": round(args.size / recover_s / 1e6, 1),
            "journal_MBps": round(built["journal_bytes"] / recover_s / 1e6, 1),
            "records_applied": res.stats.records_applied, "prefetch": args.prefetch, "cpus": os.cpu_count(),
        }
        if model is not None:
            result["verified"] = file_sha256(out) == hashlib.sha256(model).hexdigest()
        out.unlink(missing_ok=True)
        if not args.work_dir:
            work.rmdir()
        print(json.dumps(result, indent=2))
        return 0 if result.get("verified", True) else 1
    finally:
        bucket = f"dialback-{tenant}"
        close_store(store, bucket, server)


if __name__ == "__main__":
    sys.exit(main())
