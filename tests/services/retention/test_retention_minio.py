"""Rollup, policy change through the CLI, GC and recovery from bases on a real MinIO."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from services.recovery.errors import OutOfRange
from services.recovery.planner import At
from services.recovery.service import Recovery
from services.retention.policy import DAY_NS, HOUR_NS, Policy, read_policy
from shared import bases as B
from tests.services.retention.sim import SimGroup

pytestmark = pytest.mark.integration


def cli(env: dict, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "cli.main", *args], env={**os.environ, **env},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_policy_cli_rollup_gc_and_recovery_on_minio(minio_store, minio_settings, tmp_path):
    tenant = f"ret{uuid.uuid4().hex[:8]}"
    t0 = 20_300 * DAY_NS
    sim = SimGroup(minio_store, tenant, "g1", {"disk0": 1 << 20, "disk1": 512 << 10}, t0, seed=21)
    sim.initial_sync()
    sim.advance(t0 + 2 * DAY_NS, mean_gap_ns=20 * 60 * 10**9)
    env = {**minio_settings, "DIALBACK_RETENTION_CHUNK_SIZE": str(64 << 10)}
    assert json.loads(cli(env, "retention", "policy", "show", "--tenant", tenant, "--group", "g1")) == \
        json.loads(Policy().to_json())
    cli(env, "retention", "policy", "set", "--tenant", tenant, "--group", "g1", "--anypoint-hours", "3",
        "--hourly-days", "0.5", "--daily-weeks", "1")
    policy = read_policy(minio_store, sim.bucket, "g1")
    assert policy == Policy(3, 0.5, 1)
    report = json.loads(cli(env, "retention", "run", "--tenant", tenant, "--now", str(sim.now)))
    assert report["rollups"]["g1"]["bases_built"] > 0 and report["gc"]["segments_deleted"] > 0
    rec = Recovery(minio_store, work_dir=tmp_path)
    pts = [h for h in policy.retained_points(sim.now) if h >= t0]  # the volume did not exist before t0
    for h in (pts[0], pts[len(pts) // 2], pts[-1], sim.records[-1].timestamp_ns):
        plan = rec.plan(tenant, "g1", None, At.of(timestamp_ns=h))
        assert plan.base is not None
        paths, _ = rec.to_temp(plan)
        assert {v: p.read_bytes() for v, p in paths.items()} == sim.reference(sim.seq_at(h))
    gone = pts[0] + HOUR_NS // 2
    with pytest.raises(OutOfRange, match="Nearest retained points"):
        rec.plan(tenant, "g1", None, At.of(timestamp_ns=gone))
    listed = rec.points(tenant, "g1")
    assert {h for p in listed["retained"] for h in p["points_ns"]} == set(pts[:-1])
    assert B.list_base_sequences(minio_store, sim.bucket, "g1")
