"""Every HTTP service's launcher (`python -m services.<name>`) serves HTTPS from its own
DIALBACK_<NAME>_TLS_CERT_FILE / _KEY_FILE, and stops with a clear message on a bad pair."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from deploy.local.process import free_port
from shared.tls import client_context
from tests.tlscerts import make_pki

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def _env(tmp_path: Path, name: str, port: int, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALBACK_")}
    env.update({"DIALBACK_HOME": str(tmp_path / "home"), "DIALBACK_LOG_LEVEL": "WARNING",
                f"DIALBACK_{name.upper()}_PORT": str(port), **extra})
    return env


@pytest.mark.parametrize("name", ["recovery", "metering", "burst", "analyzer"])
def test_service_serves_https_with_its_certificate(name, pki, tmp_path, kafka_bootstrap, minio_settings):
    port = free_port()
    extra = {f"DIALBACK_{name.upper()}_TLS_CERT_FILE": str(pki.cert),
             f"DIALBACK_{name.upper()}_TLS_KEY_FILE": str(pki.key),
             "DIALBACK_KAFKA_BOOTSTRAP": kafka_bootstrap, "DIALBACK_BURST_USAGE": "false",
             "DIALBACK_METERING_TRANSACTIONAL_ID": f"tls-test-{os.urandom(3).hex()}", **minio_settings}
    log = tmp_path / f"{name}.log"
    proc = subprocess.Popen([sys.executable, "-m", f"services.{name}"], cwd=ROOT, env=_env(tmp_path, name, port, extra),
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        with httpx.Client(verify=client_context(pki.ca), timeout=3) as c:
            while True:
                assert proc.poll() is None, f"{name} exited {proc.returncode}: {log.read_text()[-2000:]}"
                assert time.monotonic() < deadline, f"{name} did not answer over TLS: {log.read_text()[-2000:]}"
                try:
                    r = c.get(f"https://127.0.0.1:{port}/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.3)
        assert r.status_code == 200, r.text
        with pytest.raises(httpx.HTTPError):  # and no plain HTTP on that port
            plain = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=3)
            assert plain.status_code != 200
    finally:
        proc.kill()
        proc.wait(10)


@pytest.mark.parametrize("name", ["ingest", "recovery", "analyzer", "burst"])
def test_a_key_of_another_certificate_stops_the_service_naming_the_variable(name, pki, tmp_path):
    other = make_pki(tmp_path / "other", "other")
    extra = {f"DIALBACK_{name.upper()}_TLS_CERT_FILE": str(pki.cert),
             f"DIALBACK_{name.upper()}_TLS_KEY_FILE": str(other.key)}
    r = subprocess.run([sys.executable, "-m", f"services.{name}"], cwd=ROOT, capture_output=True, text=True,
                       env=_env(tmp_path, name, free_port(), extra), timeout=60)
    assert r.returncode != 0
    assert f"{name}: DIALBACK_{name.upper()}_TLS_CERT_FILE=" in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
