"""A group with history for instant-access tests: initial sync, hours of writes, retention run (bases, GC)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi.testclient import TestClient

from agent.nbd.client import connect
from services.recovery.app import create_app
from services.recovery.config import RecoverySettings
from services.retention.job import run_tenant
from services.retention.policy import DAY_NS, HOUR_NS, Policy, write_policy
from shared import keys
from shared.auth import OPERATE, TenantAuth, create_tenant
from shared.usage import MemoryEmitter
from tests.services.retention.sim import SimGroup

GROUP = "db"
VOLUMES = {"disk0": 1 << 20, "disk1": 1 << 19}
T0 = 20_100 * DAY_NS + 3 * HOUR_NS
POLICY = Policy(anypoint_hours=2, hourly_days=0.5, daily_weeks=0)
CHUNK = 64 << 10


def history(store, tenant: str, seed: int = 11) -> SimGroup:
    sim = SimGroup(store, tenant, GROUP, VOLUMES, T0, seed=seed)
    write_policy(store, sim.bucket, GROUP, POLICY)
    sim.initial_sync()
    sim.advance(T0 + 10 * HOUR_NS, mean_gap_ns=5 * 60 * 10**9)
    retain(store, sim)
    return sim


def retain(store, sim: SimGroup):
    return run_tenant(store, sim.bucket, now_ns=sim.now, chunk_size=CHUNK)


def make_client(store, tmp_path: Path, tenants: tuple[str, ...]) -> tuple[TestClient, dict, MemoryEmitter]:
    """A recovery API on ``store``; returns the client, tenant -> auth header, and the usage events."""
    tf = tmp_path / "tenants.json"
    headers = {t: {"Authorization": f"Bearer {create_tenant(tf, t, scopes=[OPERATE])}"} for t in tenants}
    emitter = MemoryEmitter("/dialback/recovery")
    settings = RecoverySettings(home=tmp_path, recovery_work_dir=tmp_path / "work")
    app = create_app(store, TenantAuth(tf), settings, emitter=emitter)
    return TestClient(app), headers, emitter


def nbd_sha256(port: int, name: str, size: int, step: int = 256 << 10) -> str:
    h = hashlib.sha256()
    with connect("127.0.0.1", port, name) as c:
        assert c.size == size
        for off in range(0, size, step):
            h.update(c.pread(min(step, size - off), off))
    return h.hexdigest()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def lease_keys(store, bucket: str) -> list[str]:
    return [i.key for i in store.list(bucket, keys.leases_prefix(GROUP))]
