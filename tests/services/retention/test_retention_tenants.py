"""A tenant added while retention runs is picked up (rescan + self re-exec), and tenants stay apart."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deploy.local.process import terminate
from shared import keys
from shared.auth import create_tenant
from shared.bus.kafka import Producer, ensure_topics
from shared.journal import last_sequence
from shared.tenancy import control_topic, tenant_bucket, writes_topic
from tests.services.retention.helpers import batches_of, random_records

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]


def _wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _held(store, tenant, group):
    b = tenant_bucket(tenant)
    return last_sequence(store, b, group) if store.bucket_exists(b) else 0


def test_new_tenant_is_picked_up_and_kept_apart(kafka_bootstrap, minio_store, stack_env, tmp_path):
    a, b = (f"tn{random.randrange(10**6):06d}a", f"tn{random.randrange(10**6):06d}b")
    tenants = tmp_path / "tenants.json"
    create_tenant(tenants, a)
    ensure_topics(kafka_bootstrap, [writes_topic(a), control_topic(a)])
    env = {**os.environ, **stack_env, "DIALBACK_HOME": str(tmp_path), "DIALBACK_TENANTS_FILE": str(tenants),
           "DIALBACK_RETENTION_WEB_PORT": "0", "DIALBACK_RETENTION_RESCAN_INTERVAL": "1",
           "DIALBACK_RETENTION_APP_ID": f"retention-{a}"}
    log = tmp_path / "r.log"
    proc = subprocess.Popen([sys.executable, "-m", "services.retention"], cwd=ROOT, env=env,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    p = Producer(kafka_bootstrap)
    ra, rb = random_records(40, seed=1), random_records(30, seed=2)
    try:
        for m in batches_of(ra, 10):
            p.send_sync(writes_topic(a), m, key=b"g")
        _wait(lambda: _held(minio_store, a, "g") == 40, 120, "tenant a retained")
        create_tenant(tenants, b)
        ensure_topics(kafka_bootstrap, [writes_topic(b), control_topic(b)])
        for m in batches_of(rb, 10):
            p.send_sync(writes_topic(b), m, key=b"g")
        _wait(lambda: _held(minio_store, b, "g") == 30, 120, "tenant b retained after the rescan")
        assert proc.poll() is None  # re-executed in place (same pid), still running
        assert b"restarting to resubscribe" in log.read_bytes()
        # Same group id in both tenants: each bucket holds only its own tenant's records.
        assert _held(minio_store, a, "g") == 40
        seg_b = [i.key for i in minio_store.list(tenant_bucket(b), keys.journal_prefix("g"))]
        assert seg_b and all(keys.parse_range(k)[1] <= 30 for k in seg_b)
    finally:
        terminate(proc)
