"""Recoverable lag under steady load (target p99 <= 5 s) and where the web server listens."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from deploy.local.process import free_port, terminate
from shared.auth import create_tenant
from shared.bus.kafka import Producer, ensure_topics
from shared.frames import data_record, encode_batch
from shared.journal import read_timeline
from shared.tenancy import control_topic, tenant_bucket, writes_topic

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]


def test_p99_recoverable_lag_under_steady_load(kafka_bootstrap, minio_store, stack_env, tmp_path):
    tenant = f"lag{random.randrange(10**6):06d}"
    tenants = tmp_path / "tenants.json"
    create_tenant(tenants, tenant)
    ensure_topics(kafka_bootstrap, [writes_topic(tenant), control_topic(tenant)])
    web = free_port()
    env = {**os.environ, **stack_env, "DIALBACK_HOME": str(tmp_path), "DIALBACK_TENANTS_FILE": str(tenants),
           "DIALBACK_RETENTION_WEB_PORT": str(web), "DIALBACK_RETENTION_APP_ID": f"retention-{tenant}"}
    proc = subprocess.Popen([sys.executable, "-m", "services.retention"], cwd=ROOT, env=env,
                            stdout=open(tmp_path / "r.log", "ab"), stderr=subprocess.STDOUT)
    bucket = tenant_bucket(tenant)
    p = Producer(kafka_bootstrap)
    rng = random.Random(1)
    produced: dict[int, float] = {}  # last sequence of a batch -> wall time it was acknowledged by Kafka
    seen: dict[int, float] = {}      # last sequence of a timeline entry -> wall time we first saw it
    try:
        deadline = time.monotonic() + 120
        while True:  # wait for the worker to be consuming
            try:
                if httpx.get(f"http://127.0.0.1:{web}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "retention did not come up"
            time.sleep(0.3)
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{web}"], capture_output=True, text=True).stdout
        local = {line.split()[3] for line in listening.splitlines() if line.strip()}
        assert local == {f"127.0.0.1:{web}"}, listening

        # Warm-up: the consumer group join finishes after /healthz answers; lag counts from then.
        p.send_sync(writes_topic(tenant), encode_batch([data_record("d0", 1, time.time_ns(), 0, b"w" * 512)]),
                    key=b"g")
        deadline = time.monotonic() + 90
        while max(seen, default=0) < 1:
            assert time.monotonic() < deadline, "retention did not consume the warm-up batch"
            _poll(minio_store, bucket, seen)
            time.sleep(0.1)
        seq, end = 1, time.monotonic() + 12
        last_poll = 0.0
        while time.monotonic() < end:  # ~40 batches/s of 4 x 16 KiB, polling the timeline as we go
            recs = []
            for _ in range(4):
                seq += 1
                recs.append(data_record("d0", seq, time.time_ns(), rng.randrange(0, 1024) * 16384,
                                        rng.randbytes(16384)))
            p.send_sync(writes_topic(tenant), encode_batch(recs), key=b"g")
            produced[seq] = time.time()
            if time.monotonic() - last_poll > 0.1:
                last_poll = time.monotonic()
                _poll(minio_store, bucket, seen)
            time.sleep(0.02)
        final = seq
        deadline = time.monotonic() + 60
        while max(seen, default=0) < final and time.monotonic() < deadline:
            _poll(minio_store, bucket, seen)
            time.sleep(0.1)
        assert max(seen) == final
        ends = sorted(seen)
        lags = []
        for s, t in produced.items():
            durable_at = seen[next(e for e in ends if e >= s)]
            lags.append(durable_at - t)
        lags.sort()
        p99 = lags[int(len(lags) * 0.99) - 1]
        print(f"batches={len(lags)} p50={lags[len(lags) // 2]:.3f}s p99={p99:.3f}s max={lags[-1]:.3f}s")
        assert p99 <= 5.0
        m = httpx.get(f"http://127.0.0.1:{web}/metrics").text
        count = float(re.search(r"^dialback_retention_recoverable_lag_seconds_count (\S+)$", m, re.M).group(1))
        under5 = float(re.search(r'^dialback_retention_recoverable_lag_seconds_bucket\{le="5.0"\} (\S+)$', m,
                                 re.M).group(1))
        assert count > 0 and under5 / count >= 0.99
    finally:
        terminate(proc)


def _poll(store, bucket, seen: dict[int, float]) -> None:
    if not store.bucket_exists(bucket):
        return
    now = time.time()
    for e in read_timeline(store, bucket, "g"):
        seen.setdefault(e.last_seq, now)
