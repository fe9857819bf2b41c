"""dialback verify on a real MinIO: the damage matrix, and the CLI's exit codes and JSON."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import uuid

import pytest

from services.recovery.verify import verify_tenant
from shared.crypto.keyring import Keyring
from shared.objectstore.encrypted import EncryptedObjectStore
from tests.services.recovery import verify_cases as C

pytestmark = pytest.mark.integration


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_damage_matrix_on_minio(minio_store, tmp_path, encrypted):
    store = minio_store
    if encrypted:
        store = EncryptedObjectStore(minio_store, Keyring(secrets.token_bytes(32), tmp_path / "keyring.json"))
    tenant = f"ver{uuid.uuid4().hex[:8]}"
    sim = C.build_history(store, tenant)
    clean = verify_tenant(store, sim.bucket, now_ns=sim.now)
    assert clean.ok and clean.objects > 0, [str(p) for p in clean.problems]
    found = {}
    for kind, target in C.targets(store, sim.bucket).items():
        if kind == "older_base":
            continue
        original = minio_store.get(sim.bucket, target.key)  # as stored (ciphertext when encrypted)
        for how in ("flip", "truncate", "delete"):
            C.damage(minio_store, sim.bucket, how, target, encrypted)
            report = verify_tenant(store, sim.bucket, now_ns=sim.now)
            accepted, rule = C.expected(how, kind, encrypted)
            hits = C.named(report.problems, sim.bucket, target, rule)
            found[(how, kind)] = sorted({p.what for p in hits})
            assert hits and {p.what for p in hits} <= accepted, (how, kind, [str(p) for p in report.problems])
            minio_store.put(sim.bucket, target.key, original)  # undo before the next case
    assert len(found) == 12
    assert verify_tenant(store, sim.bucket, now_ns=sim.now).ok


def test_cli_verify_and_storage_usage(minio_store, minio_settings):
    tenant = f"vcl{uuid.uuid4().hex[:8]}"
    sim = C.build_history(minio_store, tenant)
    now = str(sim.now)
    ok = cli(minio_settings, "verify", tenant, "--json", "--now", now)
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["ok"] and report["objects"] > 0 and report["bytes"] > 0 and report["mb_per_s"] > 0
    target = C.targets(minio_store, sim.bucket)["chunk"]
    C.damage(minio_store, sim.bucket, "flip", target)
    bad = cli(minio_settings, "verify", tenant, "--now", now)
    assert bad.returncode == 1
    assert f"{sim.bucket}/{target.key}" in bad.stdout.replace("\n", "") or target.key.split("/")[-1][:16] in bad.stdout
    missing = cli(minio_settings, "verify", f"nosuch{uuid.uuid4().hex[:6]}")
    assert missing.returncode == 2 and "has no bucket" in missing.stderr
    usage = cli(minio_settings, "storage", "usage", tenant, "--json")
    assert usage.returncode == 0, usage.stderr
    doc = json.loads(usage.stdout)
    (g,) = doc["groups"]
    assert g["group"] == C.GROUP and g["logical_bytes"] == sum(C.VOLUMES.values())
    assert g["stored_bytes"] > 0 and g["compression_ratio"] > 0.9 and g["dedup_ratio"] > 1  # random writes
    table = cli(minio_settings, "storage", "usage", tenant)
    assert table.returncode == 0 and C.GROUP in table.stdout and "disk0" in table.stdout
