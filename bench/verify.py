"""Verify throughput: build a volume history in MinIO (journal + a base image), run verify, print JSON.

The journal is bench/recover.py's (an initial sync of the whole volume, then
random overwrites); the retention job then rolls it up into a base image of
1 MiB chunks (policy: 1 h any-point, GC off, so both journal and base stay).
``verify_tenant`` then reads and checks every object. MB/s = object bytes
read / seconds.

    .venv/bin/python -m bench.verify --start-minio --size 268435456
    .venv/bin/python -m bench.verify --start-minio --encrypted   # AES-GCM store (tags checked too)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import sys
import tempfile
import time

from bench.recover import build
from bench.common import close_store, open_store
from services.recovery.verify import verify_tenant
from services.retention.job import run_tenant
from services.retention.policy import HOUR_NS, Policy, write_policy


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256 << 20, help="volume bytes (default 256 MiB)")
    ap.add_argument("--overwrite", type=float, default=0.10, help="fraction of the volume overwritten")
    ap.add_argument("--workers", type=int, default=8, help="parallel reads in verify")
    ap.add_argument("--encrypted", action="store_true", help="wrap the store in the AES-GCM store")
    ap.add_argument("--start-minio", action="store_true", help="start a throwaway MinIO (tests/servers.py)")
    args = ap.parse_args(argv)

    server, raw, endpoint = open_store(args.start_minio)
    store = raw
    if args.encrypted:
        from shared.crypto.keyring import Keyring
        from shared.objectstore.encrypted import EncryptedObjectStore

        store = EncryptedObjectStore(raw, Keyring(secrets.token_bytes(32), tempfile.mktemp(suffix=".json")))
    tenant, group = f"benchv{random.randrange(10**6):06d}", "g1"
    bucket = f"dialback-{tenant}"
    try:
        t0 = time.perf_counter()
        built = build(store, tenant, group, args.size, 256 << 10, args.overwrite, 1, None)
        write_policy(store, bucket, group, Policy(anypoint_hours=1, hourly_days=1, daily_weeks=0))
        job = run_tenant(store, bucket, now_ns=time.time_ns() + 3 * HOUR_NS, chunk_size=1 << 20, gc=False)
        build_s = time.perf_counter() - t0
        report = verify_tenant(store, bucket, workers=args.workers, now_ns=time.time_ns() + 3 * HOUR_NS)
        result = {
            "bench": "verify", "endpoint": endpoint, "encrypted": args.encrypted, "volume_bytes": args.size,
            "journal_bytes": built["journal_bytes"], "segments": built["segments"],
            "bases_built": job.rollups[group].bases_built, "objects": report.objects, "bytes": report.bytes,
            "seconds": round(report.seconds, 3), "verify_MBps": round(report.mb_per_s, 1),
            "problems": len(report.problems), "workers": args.workers, "build_seconds": round(build_s, 3),
            "cpus": os.cpu_count(),
        }
        print(json.dumps(result, indent=2))
        return 0 if report.ok else 1
    finally:
        close_store(raw, bucket, server)


if __name__ == "__main__":
    sys.exit(main())
