"""The HTTP API on the in-memory cloud: status codes, idempotent retries, clear errors, metrics."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from services.burst.app import create_app
from services.burst.config import BurstSettings
from services.burst.engine import Engine
from services.burst.events import EventLog
from services.burst.usage import BurstUsage
from shared.usage import MemoryEmitter


@pytest.fixture
def client(tmp_path, memory_provider, image_source, tokens):
    """Authenticated as acme."""
    engine = Engine(EventLog(tmp_path), memory_provider, image_source, BurstUsage(MemoryEmitter("/dialback/burst")))
    app = create_app(BurstSettings(burst_tick_seconds=0.2, **tokens.settings()), engine=engine)
    with TestClient(app, headers=tokens.bearer(tokens.acme)) as c:
        yield c


def wait_for(client, tenant, op_id, statuses, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = client.get(f"/v1/tenants/{tenant}/operations/{op_id}").json()
        if st["status"] in statuses:
            return st
        time.sleep(0.05)
    raise AssertionError(f"{op_id} stuck in {st['status']}")


BODY = {"id": "fo-1", "tenant": "acme", "kind": "failover", "group": "g1", "volume": "disk0"}


def test_failover_then_cleanup_over_http(client, memory_provider):
    r = client.post("/v1/operations", json=BODY)
    assert r.status_code == 202 and r.json()["status"] == "requested"
    st = wait_for(client, "acme", "fo-1", {"running"})
    assert st["servers"]["s0"]["status"] == "ACTIVE" and st["servers"]["s0"]["addresses"]
    again = client.post("/v1/operations", json=BODY)
    assert again.status_code == 200 and again.json()["status"] == "running"
    types = [e["type"] for e in client.get("/v1/tenants/acme/operations/fo-1/events").json()]
    assert types[:2] == ["OperationRequested", "ProvisioningStarted"] and types[-1] == "OperationRunning"
    assert client.post("/v1/tenants/acme/operations/fo-1/cleanup").status_code == 202
    wait_for(client, "acme", "fo-1", {"cleaned"})
    assert memory_provider.list_tagged({"dialback-op": "fo-1", "dialback-tenant": "acme"}) == []
    text = client.get("/metrics").text
    assert 'dialback_burst_operations_requested_total{kind="failover"} 1.0' in text
    assert client.get("/healthz").json()["status"] == "ok"


@pytest.mark.parametrize("change,code,words", [
    ({"flavor": "m9.huge"}, 422, "m9.huge"),
    ({"point": "p9"}, 422, "p9"),
    ({"tenant": "Not A Tenant"}, 422, "tenant"),
    ({"kind": "burst", "count": 500}, 422, "count"),
    ({"kind": "plan"}, 422, "stages"),
])
def test_bad_requests_get_clear_errors(client, memory_provider, change, code, words):
    r = client.post("/v1/operations", json={**BODY, **change})
    assert r.status_code == code
    assert words in r.text
    assert memory_provider.list_tagged({"dialback-op": "fo-1", "dialback-tenant": "acme"}) == []


def test_unknown_operation_and_conflicting_retry(client):
    assert client.get("/v1/tenants/acme/operations/nope").status_code == 404
    client.post("/v1/operations", json=BODY)
    r = client.post("/v1/operations", json={**BODY, "point": "p0"})
    assert r.status_code == 409 and "different request" in r.json()["detail"]["message"]
    assert client.post("/v1/tenants/acme/operations/fo-1/scale", json={"count": 2}).status_code in (409, 422)
