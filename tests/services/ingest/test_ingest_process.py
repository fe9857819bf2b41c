"""`python -m services.ingest` as a real process: serve, get killed, restart, same answers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from deploy.local.process import free_port
from shared.auth import create_tenant

from .ingest_helpers import BATCH, batch

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]


def start(env: dict, port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "services.ingest"], cwd=ROOT, env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"ingest exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"ingest did not answer /healthz within 60s: {log.read_text()[-2000:]}")


def test_killed_and_restarted_process_gives_same_answers(kafka_bootstrap, tmp_path):
    tenants = tmp_path / "tenants.json"
    token = create_tenant(tenants, "proc-" + os.urandom(3).hex())
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALBACK_")}
    env.update(DIALBACK_KAFKA_BOOTSTRAP=kafka_bootstrap, DIALBACK_TENANTS_FILE=str(tenants),
               DIALBACK_INGEST_PORT=str(port), DIALBACK_HOME=str(tmp_path / "home"))
    base = f"http://127.0.0.1:{port}"
    h = {"Authorization": f"Bearer {token}"}
    hb = {**h, "Content-Type": BATCH}
    log = tmp_path / "ingest.log"
    proc = start(env, port, log)
    try:
        with httpx.Client(base_url=base, timeout=30) as c:
            assert c.put("/v1/groups/g1", headers=h, json={"volumes": [{"volume": "disk0", "size": 1 << 30}]}).status_code == 200
            assert c.post("/v1/groups/g1/batches", content=batch(1, 50), headers=hb).json() == {"acked_through": 50}
            oversize = c.post("/v1/groups/g1/batches", content=b"\0" * ((1 << 20) + 1), headers=hb)
            assert oversize.status_code == 413
            metrics = c.get("/metrics").text
            assert 'dialback_ingest_batches_total{outcome="rejected",reason="too_large"} 1.0' in metrics
            before = c.get("/v1/groups/g1", headers=h).json()
        proc.send_signal(signal.SIGKILL)  # no graceful shutdown: state must come from Kafka alone
        proc.wait(10)
        proc = start(env, port, log)
        with httpx.Client(base_url=base, timeout=30) as c:
            assert c.get("/v1/groups/g1", headers=h).json() == before
            assert before["acked_through"] == 50
            gap = c.post("/v1/groups/g1/batches", content=batch(52, 53), headers=hb)
            assert gap.status_code == 409 and gap.json()["expected"] == 51
            assert c.post("/v1/groups/g1/batches", content=batch(51, 53), headers=hb).json() == {"acked_through": 53}
            assert c.get("/v1/groups/g1", headers={"Authorization": "Bearer wrong"}).status_code == 401
    finally:
        proc.kill()
        proc.wait(10)


def test_parallel_groups_over_http(kafka_bootstrap, tmp_path, capsys):
    """Several agents (groups) at once through uvicorn; prints the throughput seen."""
    from concurrent.futures import ThreadPoolExecutor

    tenants = tmp_path / "tenants.json"
    token = create_tenant(tenants, "par-" + os.urandom(3).hex())
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALBACK_")}
    env.update(DIALBACK_KAFKA_BOOTSTRAP=kafka_bootstrap, DIALBACK_TENANTS_FILE=str(tenants),
               DIALBACK_INGEST_PORT=str(port), DIALBACK_LOG_LEVEL="WARNING")
    h = {"Authorization": f"Bearer {token}"}
    groups, per_group, per = 4, 6, 960
    bodies = {g: [batch(i * per + 1, (i + 1) * per, volume=f"disk{g}", size=1024) for i in range(per_group)]
              for g in range(groups)}
    proc = start(env, port, tmp_path / "ingest.log")
    try:
        def ship(g: int) -> int:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
                r = c.put(f"/v1/groups/g{g}", headers=h, json={"volumes": [{"volume": f"disk{g}", "size": 1 << 30}]})
                assert r.status_code == 200, r.text
                acked = 0
                for body in bodies[g]:
                    r = c.post(f"/v1/groups/g{g}/batches", content=body, headers={**h, "Content-Type": BATCH})
                    assert r.status_code == 200, r.text
                    acked = r.json()["acked_through"]
                return acked

        t0 = time.perf_counter()
        with ThreadPoolExecutor(groups) as pool:
            acked = list(pool.map(ship, range(groups)))
        dt = time.perf_counter() - t0
    finally:
        proc.kill()
        proc.wait(10)
    assert acked == [per_group * per] * groups
    total = sum(len(b) for bs in bodies.values() for b in bs)
    with capsys.disabled():
        print(f"\ningest over HTTP: {groups} groups in parallel, {total / 1e6:.1f} MB in {dt:.2f}s = "
              f"{total / 1e6 / dt:.1f} MB/s (uvicorn process, real Kafka, includes registration)")
