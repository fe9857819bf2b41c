"""The WAN leg over real TLS: `python -m services.ingest` serving HTTPS (DIALBACK_INGEST_TLS_*),
the real agent shipping to it with a CA bundle and pins; a wrong CA or pin trims nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from agent.runtime import AgentThread
from deploy.local.process import free_port
from shared.auth import create_tenant
from shared.tls import client_context, pem_pin
from tests.agent.conftest import agent_settings, make_image, wait_for
from tests.tlscerts import make_pki

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
MiB = 1 << 20


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"), "provider")


@pytest.fixture(scope="module")
def impostor(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("impostor"), "impostor")


@pytest.fixture(scope="module")
def tls_ingest(kafka_bootstrap, tmp_path_factory, pki):
    """(https base URL, tenant token) of an ingest process serving TLS with the provider's certificate."""
    tmp = tmp_path_factory.mktemp("ingest")
    tenants = tmp / "tenants.json"
    token = create_tenant(tenants, "tls-" + os.urandom(3).hex())
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALBACK_")}
    env.update(DIALBACK_KAFKA_BOOTSTRAP=kafka_bootstrap, DIALBACK_TENANTS_FILE=str(tenants),
               DIALBACK_INGEST_PORT=str(port), DIALBACK_HOME=str(tmp / "home"), DIALBACK_LOG_LEVEL="WARNING",
               DIALBACK_INGEST_TLS_CERT_FILE=str(pki.cert), DIALBACK_INGEST_TLS_KEY_FILE=str(pki.key))
    log = tmp / "ingest.log"
    proc = subprocess.Popen([sys.executable, "-m", "services.ingest"], cwd=ROOT, env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)
    base = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(verify=client_context(pki.ca), timeout=2) as c:
            while True:
                assert proc.poll() is None, f"ingest exited with {proc.returncode}: {log.read_text()[-2000:]}"
                assert time.monotonic() < deadline, f"ingest did not answer over TLS: {log.read_text()[-2000:]}"
                try:
                    if c.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
        yield base, token
    finally:
        proc.kill()
        proc.wait(10)


def test_plain_http_to_the_tls_port_gets_nothing(tls_ingest):
    base, _ = tls_ingest
    with pytest.raises(httpx.HTTPError):
        r = httpx.get(base.replace("https:", "http:") + "/healthz", timeout=5)
        assert r.status_code != 200  # uvicorn answers no plain HTTP on a TLS socket


def test_agent_ships_over_https_with_the_ca_bundle_and_pin(tls_ingest, pki, tmp_path):
    base, token = tls_ingest
    img = make_image(tmp_path / "a.img", 4 * MiB, os.urandom(200_000), 8192)
    s = agent_settings(tmp_path, base, {"disk0": img}, token=token, group="tls-ok",
                       ingest_ca_file=pki.ca, ingest_pins=pem_pin(pki.cert))
    h = AgentThread(s).start()
    try:
        g = h.group
        wait_for(lambda: g.state.initial_sync_complete and g.state.acked_through == g.spool.last_seq,
                 timeout=60, what="initial sync acknowledged over TLS")
        for i in range(5):
            g.write("disk0", i * 65536, os.urandom(65536))
        wait_for(lambda: g.state.acked_through == g.spool.last_seq, timeout=60, what="writes acknowledged")
        assert g.state.acked_through > 5 and not g.alarms
    finally:
        h.stop()
    with httpx.Client(verify=client_context(pki.ca), timeout=10) as c:
        held = c.get(f"{base}/v1/groups/tls-ok", headers={"Authorization": f"Bearer {token}"}).json()
    assert held["acked_through"] == g.state.acked_through  # what the agent trimmed on, ingest holds


@pytest.mark.parametrize("case", ["wrong-ca", "wrong-pin"])
def test_unverified_ingest_is_refused_and_the_spool_kept(tls_ingest, pki, impostor, tmp_path, case):
    base, token = tls_ingest
    img = make_image(tmp_path / "a.img", 2 * MiB, os.urandom(100_000), 4096)
    tls = ({"ingest_ca_file": impostor.ca} if case == "wrong-ca"
           else {"ingest_ca_file": pki.ca, "ingest_pins": pem_pin(impostor.cert)})
    s = agent_settings(tmp_path, base, {"disk0": img}, token=token, group=f"tls-{case}", **tls)
    h = AgentThread(s).start()
    try:
        g = h.group
        wait_for(lambda: "shipping" in g.alarms, timeout=30, what="the shipping alarm")
        for i in range(4):  # writes through the tap keep spooling meanwhile
            g.write("disk0", i * 4096, os.urandom(4096))
        assert g.spool.last_seq >= 4
        time.sleep(1.0)  # a few more retries: still nothing may be acknowledged
        alarm = g.alarms["shipping"]
        expect = ("not signed by a CA in DIALBACK_AGENT_INGEST_CA_FILE" if case == "wrong-ca"
                  else "matches none of the pinned keys")
        assert expect in alarm, alarm
        assert g.state.acked_through == 0 and not g.registered.is_set()
        assert g.spool.first_available() == 1, "the spool was trimmed without an authenticated acknowledgement"
        assert g.spool.pending()[0] == g.spool.last_seq
    finally:
        h.stop()
    with httpx.Client(verify=client_context(pki.ca), timeout=10) as c:
        r = c.get(f"{base}/v1/groups/tls-{case}", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 404  # the agent never reached ingest: not even registered
