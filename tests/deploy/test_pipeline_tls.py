"""deploy/local/pipeline.py with ``tls=True``: ingest serves HTTPS only, the agent ships over it
checking the pipeline's CA, and a write comes back byte-exact from recovery (bench.churn --tls)."""

from __future__ import annotations

import os

import httpx
import pytest

from agent.nbd.client import connect
from deploy.local.pipeline import Pipeline, sha256_file

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_pipeline_ships_a_batch_over_https(stack_env, tmp_path):
    p = Pipeline.create(stack_env, tmp_path / "home", tls=True)
    try:
        assert p.ingest_url.startswith("https://127.0.0.1:")
        p.start()
        # HTTPS only, and a certificate from the pipeline's own CA: plain HTTP and default trust both fail
        assert httpx.get(f"{p.ingest_url}/healthz", verify=p.ingest_verify, timeout=5).status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{p.ports['ingest']}/healthz", timeout=5)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{p.ingest_url}/healthz", timeout=5)

        disk = tmp_path / "d0.img"
        disk.write_bytes(bytes(1 << 20))
        agent = p.start_agent("tls", {"d0": disk})
        assert agent.managed.env["DIALBACK_AGENT_INGEST"] == p.ingest_url
        agent.wait_shipped(timeout=60)
        with connect(agent.nbd_socket, None, "d0") as c:
            c.pwrite(os.urandom(65536), 4096)
            c.flush()
        last = agent.wait_shipped(timeout=60)
        p.wait_recoverable("tls", last, timeout=60)
        r = p.download("tls", "d0", tmp_path / "out.img", sequence=last)
        assert r.status_code == 200, r.text
        assert sha256_file(tmp_path / "out.img") == sha256_file(disk)
    finally:
        p.stop_all()
