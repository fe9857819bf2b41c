"""Who may connect to an instant-access export: whoever got its secret name (and, with TLS, a client
certificate), nobody else; no provider paths in answers; the bind address is a setting."""

from __future__ import annotations

import subprocess

import pytest
from pydantic import ValidationError

from agent.nbd import protocol as p
from agent.nbd.client import NbdClientError, connect, list_exports, raw_option
from services.recovery.config import RecoverySettings
from shared.nbd_tls import client_context, make_certs
from shared.objectstore.memory import MemoryObjectStore
from tests.services.recovery.instant.history import GROUP, VOLUMES, history, make_client, nbd_sha256, sha

URL = f"/v1/groups/{GROUP}/exports"
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture
def api(tmp_path):
    store = MemoryObjectStore()
    sim = history(store, "acme")
    client, h, _ = make_client(store, tmp_path, ("acme",))
    with client:
        yield client, h["acme"], sim, tmp_path


def test_an_export_serves_only_its_secret_name(api):
    client, h, sim, tmp_path = api
    e = client.post(URL, json={"volume": "disk0", "latest": True, "mode": "overlay"}, headers=h).json()
    port, secret = e["port"], e["export_name"]
    assert len(secret) >= 32 and secret != "disk0" and e["uri"].endswith("/" + secret)
    # Guessing is refused: the volume name, the empty (default) name, the listing.
    for name in ("disk0", "", secret[:-1]):
        with pytest.raises(NbdClientError, match="refused"):
            connect("127.0.0.1", port, name, timeout=10)
    assert raw_option("127.0.0.1", port, p.OPT_LIST) == p.REP_ERR_POLICY
    with pytest.raises(NbdClientError):
        list_exports("127.0.0.1", port)
    res = subprocess.run(["nbdinfo", f"nbd://127.0.0.1:{port}/disk0"], capture_output=True, text=True, timeout=30)
    assert res.returncode != 0
    # The holder of the secret reads (and writes the overlay).
    assert nbd_sha256(port, secret, VOLUMES["disk0"]) == sha(sim.reference(e["sequence"])["disk0"])
    with connect("127.0.0.1", port, secret) as c:
        c.pwrite(b"mine", 0)
    # Later answers never carry the secret nor a path of the provider's host.
    later = [client.get(f"{URL}/{e['id']}", headers=h).text, client.get(URL, headers=h).text,
             client.delete(f"{URL}/{e['id']}", headers=h).text]
    for text in [*later, str(e)]:
        assert "overlay_path" not in text and str(tmp_path) not in text and "/tmp" not in text
    for text in later:
        assert secret not in text


def test_exports_with_tls_need_a_client_certificate(tmp_path):
    server, client_dir = make_certs(tmp_path / "certs", ["127.0.0.1"])
    _, stranger = make_certs(tmp_path / "other", ["127.0.0.1"])
    store = MemoryObjectStore()
    sim = history(store, "acme")
    settings = RecoverySettings(home=tmp_path, recovery_work_dir=tmp_path / "work", export_tls_dir=server)
    from fastapi.testclient import TestClient

    from services.recovery.app import create_app
    from shared.auth import OPERATE, TenantAuth, create_tenant

    tf = tmp_path / "tenants.json"
    h = {"Authorization": f"Bearer {create_tenant(tf, 'acme', scopes=[OPERATE])}"}
    with TestClient(create_app(store, TenantAuth(tf), settings)) as client:
        e = client.post(URL, json={"volume": "disk1", "latest": True}, headers=h).json()
        assert e["tls"] is True and e["uri"].startswith("nbds://127.0.0.1:")
        port, secret = e["port"], e["export_name"]
        with pytest.raises(NbdClientError, match="refused"):  # the secret alone is not enough
            connect("127.0.0.1", port, secret, timeout=10)
        with connect("127.0.0.1", port, secret, tls=client_context(client_dir)) as c:
            assert c.size == VOLUMES["disk1"]
            assert c.pread(4096, 0) == sim.reference(e["sequence"])["disk1"][:4096]
        ok = subprocess.run(["nbdinfo", f"{e['uri']}?tls-certificates={client_dir}"], capture_output=True,
                            text=True, timeout=30)
        assert ok.returncode == 0 and f"export-size: {VOLUMES['disk1']}" in ok.stdout, ok.stderr
        bad = subprocess.run(["nbdinfo", f"{e['uri']}?tls-certificates={stranger}"], capture_output=True,
                             text=True, timeout=30)
        assert bad.returncode != 0
        script = ("import nbd,sys\nh=nbd.NBD()\nh.set_tls(nbd.TLS_REQUIRE)\nh.set_tls_certificates(sys.argv[2])\n"
                  "h.connect_uri(sys.argv[1])\nprint(h.get_size())\n")
        res = subprocess.run([SYSTEM_PYTHON, "-c", script, e["uri"], str(client_dir)], capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == 0 and res.stdout.strip() == str(VOLUMES["disk1"]), res.stderr
        client.delete(f"{URL}/{e['id']}", headers=h)


def test_the_bind_address_is_a_setting_and_off_loopback_needs_tls(monkeypatch, tmp_path):
    monkeypatch.setenv("DIALBACK_EXPORT_HOST", "127.0.0.2")
    assert RecoverySettings().export_host == "127.0.0.2"
    monkeypatch.setenv("DIALBACK_EXPORT_HOST", "0.0.0.0")
    with pytest.raises(ValidationError, match="DIALBACK_EXPORT_TLS_DIR"):
        RecoverySettings()
    monkeypatch.setenv("DIALBACK_EXPORT_TLS_DIR", str(tmp_path))
    assert RecoverySettings().export_tls_dir == tmp_path


def test_exports_listen_on_the_configured_host(tmp_path):
    store = MemoryObjectStore()
    history(store, "acme")
    from fastapi.testclient import TestClient

    from services.recovery.app import create_app
    from shared.auth import OPERATE, TenantAuth, create_tenant

    tf = tmp_path / "tenants.json"
    h = {"Authorization": f"Bearer {create_tenant(tf, 'acme', scopes=[OPERATE])}"}
    settings = RecoverySettings(home=tmp_path, recovery_work_dir=tmp_path / "work", export_host="127.0.0.2")
    with TestClient(create_app(store, TenantAuth(tf), settings)) as client:
        e = client.post(URL, json={"volume": "disk0", "latest": True}, headers=h).json()
        assert e["host"] == "127.0.0.2" and e["uri"].startswith(f"nbd://127.0.0.2:{e['port']}/")
        with connect("127.0.0.2", e["port"], e["export_name"]) as c:
            assert c.size == VOLUMES["disk0"]
        with pytest.raises(OSError):
            connect("127.0.0.1", e["port"], e["export_name"], timeout=5)
        client.delete(f"{URL}/{e['id']}", headers=h)
