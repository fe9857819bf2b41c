"""Recovery time at the newest point vs the oldest retained point (default policy), print JSON.

The volume (default 1 GiB) gets an initial sync and ``--days`` of
``--churn`` daily rewrites (bench/storage_sim.py). Before any base exists,
the newest point is recovered from the whole journal (the cost bases
remove). Then the retention job runs (rollup + GC at the end of the last
day; ``--job-every-hour`` runs it hourly as the service would, which is
slower and ends in the same bases) and the newest point (nearest base +
up to ~25 h of journal), a mid-window hourly point and the oldest retained
point (a base alone) are each recovered ``--repeat`` times to a local file,
checked against digests taken at those moments. Acceptance: newest within
2x of oldest.

    .venv/bin/python -m bench.recover_window --start-minio
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.storage_sim import Workload, file_sha256
from services.recovery.planner import At
from services.recovery.service import Recovery
from services.retention.policy import HOUR_NS


def timed_recover(rec: Recovery, tenant: str, at: At, out: Path, digest: str | None, repeat: int) -> dict:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        plan = rec.plan(tenant, "g1", "disk0", at)
        res = rec.to_files(plan, {"disk0": out})
        times.append(time.perf_counter() - t)
    ok = None if digest is None else file_sha256(out) == digest
    out.unlink()
    return {"seconds_median": round(statistics.median(times), 3), "seconds": [round(x, 3) for x in times],
            "sequence": plan.point.sequence, "from_base": plan.base.sequence if plan.base else None,
            "records_applied": res.stats.records_applied, "segments": res.stats.segments,
            "base_chunks": res.stats.base_chunks, "verified": ok}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--volume-mib", type=int, default=1024)
    ap.add_argument("--days", type=float, default=7)
    ap.add_argument("--churn", type=float, default=0.05)
    ap.add_argument("--block-kib", type=int, default=64)
    ap.add_argument("--chunk-mib", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--job-every-hour", action="store_true")
    ap.add_argument("--start-minio", action="store_true")
    ap.add_argument("--work-dir", type=Path, default=None)
    args = ap.parse_args(argv)

    from bench.common import open_store
    from tests.servers import cleanup

    server, store, _ = open_store(args.start_minio)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="dialback-window-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    tenant = f"bench{random.randrange(10**6):06d}"
    wl = Workload(store, tenant, "g1", args.volume_mib << 20, work / "disk0.img", churn=args.churn,
                  block=args.block_kib << 10, chunk_size=int(args.chunk_mib * (1 << 20)))
    try:
        started = time.perf_counter()
        wl.initial_sync()
        digests = {"oldest": wl.digest()}
        hours = int(args.days * 24)
        mid_h = hours // 2
        for h in range(hours):
            end = wl.hour(h)
            if args.job_every_hour:
                wl.run_job(end)
            if h + 1 == mid_h:
                digests["middle"] = wl.digest()
        digests["newest"] = wl.digest()
        simulate_s = time.perf_counter() - started
        rec = Recovery(store, work_dir=work)
        out = work / "out.img"
        result: dict = {"bench": "recover_window", "volume_bytes": wl.size, "days": args.days,
                        "daily_churn": args.churn, "write_bytes": wl.block, "chunk_bytes": wl.chunk_size,
                        "policy": "default (any point 24 h, hourly 7 d, daily 4 w)", "cpus": os.cpu_count()}
        if not args.job_every_hour:
            result["newest_journal_only"] = timed_recover(rec, tenant, At.of(sequence=wl.seq), out,
                                                          digests["newest"], 1)
        end = wl.t0 + hours * HOUR_NS
        res = wl.run_job(end)
        result["retention_job_seconds"] = round(wl.job_seconds, 1)
        result["gc"] = vars(res.gc)
        points = {"newest": At.of(sequence=wl.seq), "middle": At.of(timestamp_ns=wl.t0 + mid_h * HOUR_NS),
                  "oldest": At.of(timestamp_ns=wl.t0)}
        for name, at in points.items():
            result[name] = timed_recover(rec, tenant, at, out, digests[name], args.repeat)
        result["newest_over_oldest"] = round(result["newest"]["seconds_median"] /
                                             result["oldest"]["seconds_median"], 2)
        result["simulate_seconds"] = round(simulate_s, 1)
        print(json.dumps(result, indent=2))
        return 0
    finally:
        wl.close()
        shutil.rmtree(work, ignore_errors=True)
        if server is not None:
            cleanup(server)


if __name__ == "__main__":
    sys.exit(main())
