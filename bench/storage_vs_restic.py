"""Stored bytes and restore time: Dialback (default policy) vs restic backing up hourly, same MinIO, same run.

One volume (default 1 GiB) gets an initial sync, then ``--churn`` of it
rewritten per simulated day for ``--days`` days (see bench/storage_sim.py).
Dialback journals every write and runs its retention job (rollup + GC,
default policy: any point 24 h, hourly 7 days, daily 4 weeks) every
simulated hour. restic (Debian package) backs up the same volume file
after the initial sync and after every simulated hour into another bucket
of the same MinIO; with 7 days nothing of restic's hourly snapshots is
outside the policy, so no ``forget`` is run. Then the bytes in each bucket
are summed, and the oldest retained point (the end of the initial sync)
and the newest are restored by both, timed and checked against SHA-256
digests of the volume taken at those moments.

    .venv/bin/python -m bench.storage_vs_restic --start-minio                 # 1 GiB, 7 days
    .venv/bin/python -m bench.storage_vs_restic --start-minio --volume-mib 256  # scaled
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.storage_sim import Workload, bucket_bytes, file_sha256
from services.recovery.planner import At
from services.recovery.service import Recovery


def restic(env: dict, *args: str, capture: bool = True) -> str:
    out = subprocess.run(["restic", *args], env=env, capture_output=capture, text=True, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"restic {' '.join(args)} failed ({out.returncode}): {out.stderr[-2000:]}")
    return out.stdout


def restic_backup(env: dict, src: Path) -> str:
    for line in restic(env, "backup", "--json", "--host", "bench", str(src)).splitlines():
        doc = json.loads(line)
        if doc.get("message_type") == "summary":
            return doc["snapshot_id"]
    raise RuntimeError("restic backup printed no summary")


def restic_restore(env: dict, snapshot: str, target: Path) -> tuple[float, Path]:
    t = time.perf_counter()
    restic(env, "restore", snapshot, "--target", str(target))
    elapsed = time.perf_counter() - t
    found = [p for p in target.rglob("disk0.img")]
    return elapsed, found[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--volume-mib", type=int, default=1024)
    ap.add_argument("--days", type=float, default=7)
    ap.add_argument("--churn", type=float, default=0.05, help="fraction of the volume rewritten per day")
    ap.add_argument("--block-kib", type=int, default=64, help="size of each write")
    ap.add_argument("--chunk-mib", type=float, default=1.0, help="Dialback base chunk size")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start-minio", action="store_true", help="start a throwaway MinIO (tests/servers.py)")
    ap.add_argument("--work-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    if shutil.which("restic") is None:
        print("restic is not installed: apt-get install -y restic (deploy/local/setup.sh does)", file=sys.stderr)
        return 2

    from tests.servers import cleanup, start_minio

    server = start_minio() if args.start_minio else None
    if server is None:
        from shared.config import CommonSettings
        from shared.objectstore.factory import store_from_settings

        s = CommonSettings()
        store, endpoint = store_from_settings(s), s.s3_endpoint
        access, secret = s.s3_access_key, s.s3_secret_key.get_secret_value()
    else:
        store, endpoint, access, secret = server.store(), server.endpoint, server.access_key, server.secret_key
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="dialback-storage-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    tenant = f"bench{random.randrange(10**6):06d}"
    rbucket = f"restic-{tenant}"
    store.ensure_bucket(rbucket)
    env = {**os.environ, "RESTIC_REPOSITORY": f"s3:http://{endpoint}/{rbucket}",
           "RESTIC_PASSWORD": secrets.token_urlsafe(16), "AWS_ACCESS_KEY_ID": access,
           "AWS_SECRET_ACCESS_KEY": secret, "RESTIC_CACHE_DIR": str(work / "restic-cache")}
    src = work / "volume"
    src.mkdir(exist_ok=True)
    size = args.volume_mib << 20
    wl = Workload(store, tenant, "g1", size, src / "disk0.img", churn=args.churn, block=args.block_kib << 10,
                  chunk_size=int(args.chunk_mib * (1 << 20)), seed=args.seed)
    try:
        restic(env, "init")
        started = time.perf_counter()
        wl.initial_sync()
        first_digest = wl.digest()
        backup_s = 0.0
        t = time.perf_counter()
        first_snap = restic_backup(env, src)
        backup_s += time.perf_counter() - t
        hours = int(args.days * 24)
        for h in range(hours):
            end = wl.hour(h)
            wl.run_job(end)
            t = time.perf_counter()
            last_snap = restic_backup(env, src)
            backup_s += time.perf_counter() - t
            if h % 24 == 23:
                print(f"day {(h + 1) // 24}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
        last_digest = wl.digest()
        now = wl.t0 + hours * 3600 * 10**9
        ours, ours_n = bucket_bytes(store, wl.bucket)
        parts = {p: bucket_bytes(store, wl.bucket, p)[0] for p in ("chunks/", "groups/g1/journal/",
                                                                    "groups/g1/bases/", "groups/g1/timeline/")}
        theirs, theirs_n = bucket_bytes(store, rbucket)
        rec = Recovery(store, work_dir=work)
        restores = {}
        for name, at, digest, snap in (("oldest", At.of(timestamp_ns=wl.t0), first_digest, first_snap),
                                       ("newest", At.of(sequence=wl.seq), last_digest, last_snap)):
            out = work / f"dialback-{name}.img"
            t = time.perf_counter()
            plan = rec.plan(tenant, "g1", "disk0", at)
            rec.to_files(plan, {"disk0": out})
            ours_s = time.perf_counter() - t
            ok_ours = file_sha256(out) == digest
            out.unlink()
            theirs_s, rpath = restic_restore(env, snap, work / f"restic-{name}")
            ok_theirs = file_sha256(rpath) == digest
            shutil.rmtree(work / f"restic-{name}")
            restores[name] = {"dialback_seconds": round(ours_s, 3), "restic_seconds": round(theirs_s, 3),
                              "dialback_from_base": plan.base.sequence if plan.base else None,
                              "dialback_verified": ok_ours, "restic_verified": ok_theirs}
        result = {
            "bench": "storage_vs_restic", "volume_bytes": size, "days": args.days, "daily_churn": args.churn,
            "write_bytes": args.block_kib << 10, "chunk_bytes": wl.chunk_size, "hourly_backups": hours + 1,
            "policy": "default (any point 24 h, hourly 7 d, daily 4 w)", "encryption_at_rest": False,
            "dialback_stored_bytes": ours, "dialback_objects": ours_n, "dialback_breakdown": parts,
            "restic_stored_bytes": theirs, "restic_objects": theirs_n,
            "ratio_dialback_over_restic": round(ours / theirs, 3),
            "restores": restores,
            "dialback_journal_write_seconds": round(wl.journal_seconds, 1),
            "dialback_retention_job_seconds": round(wl.job_seconds, 1),
            "restic_backup_seconds_total": round(backup_s, 1),
            "wall_seconds": round(time.perf_counter() - started, 1), "cpus": os.cpu_count(),
            "now_ns": now, "restic_version": restic(env, "version").strip(),
        }
        print(json.dumps(result, indent=2))
        return 0
    finally:
        wl.close()
        shutil.rmtree(work, ignore_errors=True)
        if server is not None:
            cleanup(server)


if __name__ == "__main__":
    sys.exit(main())
