"""Writes through Kafka -> retention (subprocess) -> MinIO -> recovery API (subprocess) and CLI."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from deploy.local.process import free_port
from shared.auth import OPERATE, create_tenant
from shared.bus.kafka import Producer, ensure_topics
from shared.frames import data_record
from shared.journal import INITIAL_SYNC_BOOKMARK, read_timeline
from shared.tenancy import control_topic, tenant_bucket, writes_topic
from tests.services.recovery.journal_builder import reference
from tests.services.retention.helpers import batches_of, bookmark, random_records

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
VOLS = {"disk0": 1 << 20, "disk1": 1 << 20}


def _wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_recover_through_real_stack(kafka_bootstrap, minio_store, stack_env, tmp_path):
    tenant = f"re{random.randrange(10**6):06d}"
    tenants = tmp_path / "tenants.json"
    token = create_tenant(tenants, tenant, scopes=[OPERATE])
    ensure_topics(kafka_bootstrap, [writes_topic(tenant), control_topic(tenant)])
    rng = random.Random(21)
    recs, seq = [], 0
    for v, size in VOLS.items():
        for off in range(0, size, 65536):
            seq += 1
            recs.append(data_record(v, seq, 10_000 + seq, off, rng.randbytes(65536)))
    seq += 1
    recs.append(bookmark("disk0", seq, 10_000 + seq, INITIAL_SYNC_BOOKMARK))
    sync = seq
    recs += random_records(300, volumes=tuple(VOLS), size=1 << 20, start=seq + 1, seed=22, ts0=10_000)
    last = recs[-1].sequence

    p = Producer(kafka_bootstrap)
    p.send_sync(control_topic(tenant), json.dumps({"type": "GroupRegistered", "group": "cg", "time": 1, "volumes": [
        {"volume": v, "size": s} for v, s in VOLS.items()]}).encode(), key=b"group/cg")
    for b in batches_of(recs, 6):
        p.send_sync(writes_topic(tenant), b, key=b"cg")

    port = free_port()
    env = {**os.environ, **stack_env, "DIALBACK_HOME": str(tmp_path), "DIALBACK_TENANTS_FILE": str(tenants),
           "DIALBACK_RETENTION_WEB_PORT": str(free_port()), "DIALBACK_RETENTION_APP_ID": f"retention-{tenant}",
           "DIALBACK_RECOVERY_PORT": str(port), "DIALBACK_TENANT": tenant}
    log = open(tmp_path / "services.log", "ab")
    procs = [subprocess.Popen([sys.executable, "-m", "services.retention"], cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT),
             subprocess.Popen([sys.executable, "-m", "services.recovery"], cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT)]
    bucket = tenant_bucket(tenant)
    try:
        _wait(lambda: max(e.last_seq for e in read_timeline(minio_store, bucket, "cg")) == last, 120,
              "retention to hold every record")
        web = env["DIALBACK_RETENTION_WEB_PORT"]
        _wait(lambda: httpx.get(f"http://127.0.0.1:{web}/healthz").status_code == 200, 30, "retention /healthz")
        assert b"dialback_retention_segments_total" in httpx.get(f"http://127.0.0.1:{web}/metrics").content
        base = f"http://127.0.0.1:{port}"
        _wait(lambda: httpx.get(f"{base}/healthz").status_code == 200, 30, "recovery API")
        h = {"Authorization": f"Bearer {token}"}
        pts = httpx.get(f"{base}/v1/groups/cg/points", headers=h).json()
        assert pts["earliest"]["sequence"] == sync and pts["latest"]["sequence"] == last

        for n in (sync, sync + 123, last):
            want = reference(VOLS, recs, n)
            for v in VOLS:
                r = httpx.get(f"{base}/v1/groups/cg/volumes/{v}/image", params={"sequence": n}, headers=h,
                              timeout=60)
                assert r.status_code == 200, r.text
                assert r.content == want[v], f"{v} at {n}"

        n = sync + 200
        r = httpx.post(f"{base}/v1/groups/cg/recoveries", headers=h, timeout=60,
                       json={"volume": "all", "at": {"timestamp_ns": recs[n - 1].timestamp_ns}})
        assert r.status_code == 201, r.text
        want = reference(VOLS, recs, n)
        for item in r.json()["volumes"]:
            assert minio_store.get(item["bucket"], item["key"]) == want[item["volume"]]

        assert httpx.get(f"{base}/v1/groups/cg/volumes/disk0/image", params={"sequence": last + 1},
                         headers=h).status_code == 422

        # The CLI, both through the API and directly against MinIO.
        out = tmp_path / "cli.img"
        cli = [sys.executable, "-m", "cli.main", "recover", "cg", "--volume", "disk1", "--at-seq", str(sync + 50)]
        res = subprocess.run(cli + ["--out", str(out), "--recovery", base, "--token", token], cwd=ROOT, env=env,
                             capture_output=True, timeout=120)
        assert res.returncode == 0, res.stderr.decode()
        assert out.read_bytes() == reference(VOLS, recs, sync + 50)["disk1"]
        res = subprocess.run(cli + ["-", "--direct"], cwd=ROOT, env=env, capture_output=True, timeout=120)
        assert res.returncode == 0, res.stderr.decode()
        assert res.stdout == reference(VOLS, recs, sync + 50)["disk1"]
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
