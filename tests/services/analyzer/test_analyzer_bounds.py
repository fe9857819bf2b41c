"""The analyzer's API needs a token, keeps each tenant's profiles apart, caps their number, and streams
uploads to disk (over a real uvicorn server: the body is never held in memory)."""

from __future__ import annotations

import socket
import threading
import time
import tracemalloc

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from agent.profile import synthetic as syn
from agent.profile.format import Header
from deploy.local.process import free_port
from services.analyzer.app import create_app
from services.analyzer.config import AnalyzerSettings
from shared.auth import OPERATE, create_tenant

MB = 1e6
ADMIN = "analyzer-admin-token-4242424242"


@pytest.fixture
def world(tmp_path):
    tenants = tmp_path / "tenants.json"
    tokens = {t: create_tenant(tenants, t, scopes=(OPERATE,), label="operator") for t in ("acme", "globex")}
    settings = AnalyzerSettings(analyzer_profile_dir=tmp_path / "store", analyzer_max_upload_mb=1,
                                analyzer_max_profiles_per_tenant=2, tenants_file=tenants, analyzer_token=ADMIN)
    return settings, tokens


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(world):
    settings, tokens = world
    with TestClient(create_app(settings)) as c:
        yield c, tokens


def test_every_route_needs_a_token_even_without_an_admin_token(world, make_profile):
    settings, _ = world
    settings = settings.model_copy(update={"analyzer_token": None})
    c = TestClient(create_app(settings))
    body = make_profile("p", syn.constant(60, MB)).read_bytes()
    for method, url, kw in [("GET", "/v1/profiles", {}), ("PUT", "/v1/profiles/p", {"content": body}),
                            ("POST", "/v1/analyses", {"json": {"profiles": ["p"]}})]:
        r = c.request(method, url, **kw)
        assert r.status_code == 401 and "Bearer" in r.text, (method, url, r.status_code)
    assert not settings.analyzer_profile_dir.exists() or not any(settings.analyzer_profile_dir.rglob("p"))


def test_one_tenant_cannot_see_or_use_another_tenants_profile(client, make_profile):
    c, tokens = client
    body = make_profile("web1", syn.constant(60, MB), server="acme-web").read_bytes()
    assert c.put("/v1/profiles/web1", content=body, headers=bearer(tokens["acme"])).status_code == 200
    g = bearer(tokens["globex"])
    assert c.get("/v1/profiles", headers=g).json() == {"profiles": []}
    r = c.post("/v1/analyses", json={"profiles": ["web1"]}, headers=g)
    assert r.status_code == 404 and "acme" not in r.text
    assert c.get("/v1/profiles?tenant=acme", headers=g).status_code == 404
    assert c.delete("/v1/profiles/web1", headers=g).status_code == 404
    # globex's own profile of the same name is its own
    other = make_profile("web1-g", syn.constant(30, MB), server="globex-web").read_bytes()
    assert c.put("/v1/profiles/web1", content=other, headers=g).json()["server"] == "globex-web"
    a = c.post("/v1/analyses", json={"profiles": ["web1"]}, headers=bearer(tokens["acme"]))
    assert a.status_code == 200 and a.json()["total"]["name"] == "acme-web"
    # the provider acts for the tenant it names
    adm = bearer(ADMIN)
    assert [p["name"] for p in c.get("/v1/profiles?tenant=acme", headers=adm).json()["profiles"]] == ["web1"]
    assert c.get("/v1/profiles", headers=adm).status_code == 422


def test_profiles_per_tenant_are_capped(client, make_profile):
    c, tokens = client
    a, g = bearer(tokens["acme"]), bearer(tokens["globex"])
    body = make_profile("p", syn.constant(60, MB)).read_bytes()
    assert c.put("/v1/profiles/one", content=body, headers=a).status_code == 200
    assert c.put("/v1/profiles/two", content=body, headers=a).status_code == 200
    r = c.put("/v1/profiles/three", content=body, headers=a)
    assert r.status_code == 409 and "DIALBACK_ANALYZER_MAX_PROFILES_PER_TENANT" in r.text
    assert c.put("/v1/profiles/two", content=body, headers=a).status_code == 200, "replacing one is fine"
    assert c.put("/v1/profiles/three", content=body, headers=g).status_code == 200, "the cap is per tenant"
    assert c.delete("/v1/profiles/one", headers=a).status_code == 204
    assert c.put("/v1/profiles/three", content=body, headers=a).status_code == 200
    assert [p["name"] for p in c.get("/v1/profiles", headers=a).json()["profiles"]] == ["three", "two"]


class Served:
    def __init__(self, app) -> None:
        self.app, self.port = app, free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def served(world):
    settings, tokens = world
    settings = settings.model_copy(update={"analyzer_max_upload_mb": 64})
    s = Served(create_app(settings))
    yield s, tokens, settings
    s.close()


def _chunks(data: bytes, size: int = 1 << 20):
    for i in range(0, len(data), size):
        yield data[i: i + size]


def test_an_upload_is_streamed_to_disk_not_held_in_memory(served, tmp_path):
    s, tokens, settings = served
    path = tmp_path / "big.prof"
    n = (16 << 20) // 124
    syn.write_profile(str(path), Header("big", "disk0", 0), 1_700_000_000, syn.constant(n, MB))
    data = path.read_bytes()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        r = httpx.put(f"{s.url}/v1/profiles/big", content=_chunks(data), headers=bearer(tokens["acme"]), timeout=60)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert r.status_code == 200 and r.json()["records"] == n, r.text
    assert (settings.analyzer_profile_dir / "acme" / "big").read_bytes() == data
    # the test's own copy of the body was allocated before the baseline; the server's share must stay small
    print(f"\nupload of {len(data)} bytes: peak {peak} bytes allocated")
    assert peak < len(data) // 2, f"{peak} bytes allocated at the peak for a {len(data)}-byte upload"


def test_over_the_size_cap_is_413_and_leaves_nothing(served):
    s, tokens, settings = served
    cap = settings.analyzer_max_upload_mb << 20
    r = httpx.put(f"{s.url}/v1/profiles/huge", content=_chunks(bytes(cap + (1 << 20))),
                  headers=bearer(tokens["acme"]), timeout=60)
    assert r.status_code == 413 and "DIALBACK_ANALYZER_MAX_UPLOAD_MB" in r.text
    d = settings.analyzer_profile_dir / "acme"
    assert not d.exists() or list(d.iterdir()) == [], "a refused upload left a file behind"
    # an announced length over the cap is refused before a byte of the body is sent
    with socket.create_connection(("127.0.0.1", s.port)) as sock:
        sock.sendall((f"PUT /v1/profiles/huge HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tokens['acme']}\r\n"
                      f"Content-Length: {64 << 30}\r\n\r\n").encode())
        sock.settimeout(10)
        assert sock.recv(4096).startswith(b"HTTP/1.1 413")
