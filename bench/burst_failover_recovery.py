"""Failover of a 1 GiB volume from a real recovery point, request to ACTIVE, timed step by step; print JSON.

The volume (``--volume-mib``, default 1024) gets a full initial sync of
compressible data plus ``--hours`` of 5 %/day churn, journaled into MinIO the
way retention writes it (bench/storage_sim.py). Then the burst engine, with
the recovery-backed image source, fails it over at "latest" on the real local
OpenStack: image synthesis from MinIO, Glance upload, create calls, boot.
The Glance checksum is compared with the volume's md5; everything made is
cleaned up afterwards.

    DIALBACK_OS_STATE_DIR=/tmp/os-state .venv/bin/python -m bench.burst_failover_recovery --start-minio
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.storage_sim import Workload


def md5_file(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(8 << 20):
            h.update(block)
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--volume-mib", type=int, default=1024)
    ap.add_argument("--hours", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--start-minio", action="store_true")
    ap.add_argument("--work-dir", type=Path, default=None)
    args = ap.parse_args(argv)

    from deploy.local.openstack import provision as osp
    from services.burst.engine import Engine
    from services.burst.events import EventLog
    from services.burst.model import OperationSpec
    from services.burst.provider.openstack import OpenStackProvider
    from services.burst.recovery_images import RecoveryImageSource
    from services.burst.usage import BurstUsage
    from shared.usage import MemoryEmitter
    from tests.fixtures_openstack import local_state_dir
    from bench.common import open_store
    from tests.servers import cleanup

    server, store, _ = open_store(args.start_minio)
    state = local_state_dir()
    was_running = all(s["running"] for s in osp.status(state).values())
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="dialback-burst-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    tenant = f"bench{random.randrange(10**6):06d}"
    wl = Workload(store, tenant, "g1", args.volume_mib << 20, work / "disk0.img")
    try:
        t = time.perf_counter()
        wl.initial_sync()
        for h in range(args.hours):
            wl.hour(h)
        wl.digest()
        prepare_s = time.perf_counter() - t
        want_md5 = md5_file(wl.image)
        t = time.perf_counter()
        cloud = osp.start(state)
        cloud_start_s = time.perf_counter() - t
        provider = OpenStackProvider(**cloud.connect_kwargs())
        engine = Engine(EventLog(work / "burst"), provider, RecoveryImageSource(store, work / "images"),
                        BurstUsage(MemoryEmitter("/dialback/burst")))
        runs = []
        for i in range(args.repeat):
            op = f"bench-{tenant}-{i}"
            t = time.perf_counter()
            engine.submit(OperationSpec(id=op, tenant=tenant, kind="failover", group="g1", volume="disk0"))
            st = engine.drive(tenant, op)
            wall = time.perf_counter() - t
            try:
                if st.status != "running":
                    raise RuntimeError(f"failover did not reach running: {st.error}")
                image = st.images["g1/disk0@latest"]
                runs.append({"wall_seconds": round(wall, 2), "point": st.points["g1/disk0@latest"],
                             "glance_md5_matches": image["checksum"] == want_md5,
                             **{k: round(v, 2) for k, v in st.timings.items()}})
            finally:
                engine.request_cleanup(tenant, op, "bench done")
                engine.drive(tenant, op)
        print(json.dumps({"bench": "burst.failover_recovery", "volume_bytes": wl.size, "hours_of_churn": args.hours,
                          "journal_sequences": wl.seq, "prepare_seconds": round(prepare_s, 1),
                          "cloud_start_seconds": round(cloud_start_s, 1), "cpus": os.cpu_count(),
                          "loadavg_1m": round(os.getloadavg()[0], 1), "runs": runs}, indent=2))
        return 0
    finally:
        wl.close()
        shutil.rmtree(work, ignore_errors=True)
        if server is not None:
            cleanup(server)
        if not was_running:
            osp.stop(state)


if __name__ == "__main__":
    sys.exit(main())
