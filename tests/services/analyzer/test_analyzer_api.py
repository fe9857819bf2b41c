"""The analyzer HTTP API: upload (verified), list, analyze as JSON and HTML, errors, auth, ops endpoints."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from agent.profile import synthetic as syn
from agent.profile.format import HEADER_SIZE, RECORD_SIZE
from services.analyzer.app import create_app
from services.analyzer.config import AnalyzerSettings
from shared.auth import OPERATE, create_tenant

MB = 1e6


@pytest.fixture
def client(tmp_path):
    tenants = tmp_path / "tenants.json"
    token = create_tenant(tenants, "acme", scopes=(OPERATE,), label="operator")
    settings = AnalyzerSettings(analyzer_profile_dir=tmp_path / "store", analyzer_max_upload_mb=1,
                                tenants_file=tenants)
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {token}"}) as c:
        yield c


def test_upload_list_analyze(client, make_profile):
    p = make_profile("web1.dbprof", syn.single_spike(3600, 0.2 * MB, 1800, 500 * MB, 60), server="web1")
    r = client.put("/v1/profiles/web1.dbprof", content=p.read_bytes())
    assert r.status_code == 200, r.text
    assert r.json()["server"] == "web1" and r.json()["records"] == 3600
    assert client.get("/v1/profiles").json()["profiles"][0]["name"] == "web1.dbprof"
    r = client.post("/v1/analyses", json={"profiles": ["web1.dbprof"],
                                          "params": {"bandwidth_mbps": 20, "rpo_targets_min": [5, 15]}})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["total"]["name"] == "web1" and d["total"]["spike_count"] == 1
    assert [n["rpo_target_min"] for n in d["total"]["bandwidth"]["needed"]] == [5, 15]
    assert d["total"]["rpo"]["mbps"] == 20
    assert d["total"]["sources"] == ["web1.dbprof"]  # no server-side paths leak to the portal
    h = client.post("/v1/analyses?format=html", json={"profiles": ["web1.dbprof"]})
    assert h.status_code == 200 and h.headers["content-type"].startswith("text/html")
    assert h.text.count("data:image/png;base64,") == 4
    m = client.get("/metrics").text
    assert 'dialback_analyzer_analyses_total{outcome="ok"} 2.0' in m
    assert client.get("/healthz").json() == {"status": "ok"}


def test_corrupt_upload_is_refused_with_offset_and_not_stored(client, make_profile):
    p = make_profile("bad", syn.constant(100, MB))
    data = bytearray(p.read_bytes())
    off = HEADER_SIZE + 10 * RECORD_SIZE
    data[off + 3] ^= 1
    r = client.put("/v1/profiles/bad", content=bytes(data))
    assert r.status_code == 400 and f"offset {off}" in r.json()["detail"]
    assert client.get("/v1/profiles").json()["profiles"] == []


def test_errors(client, make_profile):
    assert client.post("/v1/analyses", json={"profiles": ["nope"]}).status_code == 404
    assert client.put("/v1/profiles/..%2Fescape", content=b"x").status_code in (404, 422)
    assert client.put("/v1/profiles/.hidden", content=b"x").status_code == 422
    r = client.post("/v1/analyses", json={"profiles": ["x"], "params": {"rpo_targets_min": [-1]}})
    assert r.status_code == 422
    big = make_profile("big", syn.constant(10000, MB))  # 1.28 MB > the 1 MiB limit set above
    assert client.put("/v1/profiles/big", content=big.read_bytes()).status_code == 413


def test_token(tmp_path, make_profile):
    admin = "s3cret-admin-token-0123456789"
    settings = AnalyzerSettings(analyzer_profile_dir=tmp_path / "s", analyzer_token=admin,
                                tenants_file=tmp_path / "tenants.json")
    with TestClient(create_app(settings)) as c:
        assert c.get("/v1/profiles").status_code == 401
        assert c.get("/v1/profiles", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/v1/profiles?tenant=acme", headers={"Authorization": f"Bearer {admin}"}).status_code == 200
        assert c.get("/healthz").status_code == 200
    with pytest.raises(ValueError, match="placeholder"):
        create_app(AnalyzerSettings(analyzer_profile_dir=tmp_path / "s", analyzer_token="changeme"))
