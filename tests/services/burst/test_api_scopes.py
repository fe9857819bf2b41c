"""Burst takes tenant operator (or provider) credentials, and refuses new operations while burst is switched off."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from services.burst.app import create_app
from services.burst.config import BurstSettings
from services.burst.engine import Engine
from services.burst.events import EventLog
from services.burst.usage import BurstUsage
from shared.auth import INGEST, issue
from shared.licences import BookView, LicenceBook
from shared.usage import Feature, MemoryEmitter
from tests.services.burst.test_api_auth import BODY, RecordingProvider, routes


@pytest.fixture
def world(tmp_path, memory_provider, image_source, tokens):
    provider, book = RecordingProvider(memory_provider), LicenceBook()
    engine = Engine(EventLog(tmp_path), provider, image_source, BurstUsage(MemoryEmitter("/dialback/burst")))
    app = create_app(BurstSettings(burst_tick_seconds=3600, **tokens.settings()), engine=engine,
                     licences=BookView(book))
    with TestClient(app) as c:
        yield c, provider, book


def test_an_agent_credential_runs_no_operation(world, tokens):
    c, provider, _ = world
    agent = tokens.bearer(issue(tokens.tenants_file, "acme", [INGEST]).token)
    own = []
    for method, path, body in routes("acme", "fo-1"):
        r = c.request(method, path, json=body, headers=agent)
        assert r.status_code == 403, (method, path, r.text)
        assert "operator credential" in r.json()["detail"]["message"]
        own.append(r.json())
    # another tenant: the same 403 (the scope is checked before the tenant), so nothing to learn
    for (method, path, body), mine in zip(routes("globex", "fo-1"), own):
        r = c.request(method, path, json=body, headers=agent)
        assert (r.status_code, r.json()) == (403, mine), (method, path, r.text)
    assert c.get("/v1/operations", headers=agent).status_code == 403
    assert provider.calls == []


def test_operations_are_refused_while_burst_is_switched_off(world, tokens):
    c, provider, book = world
    acme = tokens.bearer(tokens.acme)
    lic = book.switch("acme", Feature.BURST, "g1", False, 1_800_000_000.0)
    book.apply_record(lic.key, lic.to_json())
    for kind in ("failover", "drtest"):
        r = c.post("/v1/operations", json={**BODY, "kind": kind, "id": f"{kind}-1"}, headers=acme)
        assert r.status_code == 403, r.text
        msg = r.json()["detail"]["message"]
        assert "burst (failover, DR tests) is switched off for group 'g1'" in msg
        assert "dialback license on acme burst --group g1" in msg
    assert provider.calls == []
    assert c.get("/v1/tenants/acme/operations", headers=acme).json() == []
    lic = book.switch("acme", Feature.BURST, "g1", True, 1_800_000_010.0)
    book.apply_record(lic.key, lic.to_json())
    assert c.post("/v1/operations", json=BODY, headers=acme).status_code == 202
