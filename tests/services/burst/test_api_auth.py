"""Bearer tokens and tenant scope on the burst API (in-memory cloud): a wrong tenant changes and learns nothing."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.burst.app import create_app
from services.burst.config import BurstSettings
from services.burst.engine import Engine
from services.burst.events import EventLog
from services.burst.provider.memory import MemoryProvider
from services.burst.usage import BurstUsage
from shared.usage import MemoryEmitter
from tests.services.burst.rawimage import put_point

BODY = {"id": "fo-1", "tenant": "acme", "kind": "failover", "group": "g1", "volume": "disk0"}
FAILBACK = {"reverse_group": "g1-back", "target": "/nonexistent/home.img", "agent_url": "http://127.0.0.1:9"}


class RecordingProvider:
    """Every provider call, by method name (unit test only: proves "no cloud call")."""

    def __init__(self, inner: MemoryProvider) -> None:
        self.inner, self.calls = inner, []

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*a, **kw):
            self.calls.append(name)
            return attr(*a, **kw)
        return call


def routes(tenant: str, op_id: str) -> list[tuple[str, str, dict | None]]:
    """Every authenticated route, aimed at ``tenant``'s operation ``op_id``."""
    base = f"/v1/tenants/{tenant}/operations"
    return [("POST", "/v1/operations", {**BODY, "tenant": tenant, "id": op_id}),
            ("GET", base, None), ("GET", f"{base}/{op_id}", None), ("GET", f"{base}/{op_id}/events", None),
            ("POST", f"{base}/{op_id}/scale", {"count": 2}), ("POST", f"{base}/{op_id}/cleanup", {"reason": "x"}),
            ("POST", f"{base}/{op_id}/failback", FAILBACK)]


@pytest.fixture(scope="module")
def globex_image(image_root: Path) -> None:
    put_point(image_root, "globex", "g1", "disk0", "p1", 16 << 20)


@pytest.fixture
def world(tmp_path, memory_provider, image_source, tokens, globex_image):
    """The app with acme's failover fo-1 running; (app, provider, emitter, state dir)."""
    provider, emitter = RecordingProvider(memory_provider), MemoryEmitter("/dialback/burst")
    engine = Engine(EventLog(tmp_path), provider, image_source, BurstUsage(emitter))
    app = create_app(BurstSettings(burst_tick_seconds=3600, **tokens.settings()), engine=engine)
    with TestClient(app) as c:
        assert c.post("/v1/operations", json=BODY, headers=tokens.bearer(tokens.acme)).status_code == 202
        deadline = time.monotonic() + 20
        while c.get("/v1/tenants/acme/operations/fo-1", headers=tokens.bearer(tokens.acme)).json()["status"] \
                != "running":
            assert time.monotonic() < deadline, "fo-1 did not reach running"
            time.sleep(0.05)
        yield c, provider, emitter, tmp_path


def snapshot(state: Path, provider: RecordingProvider, emitter: MemoryEmitter) -> tuple:
    files = {str(p.relative_to(state)): p.read_bytes() for p in sorted(state.rglob("*")) if p.is_file()}
    return files, list(provider.calls), [e.id for e in emitter.events]


def test_no_token_or_unknown_token_is_401_with_a_hint(world, tokens):
    c, provider, emitter, state = world
    before = snapshot(state, provider, emitter)
    for header in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}):
        for method, path, body in routes("acme", "fo-1") + [("GET", "/v1/operations", None)]:
            r = c.request(method, path, json=body, headers=header)
            assert r.status_code == 401, (method, path, r.text)
            assert "Authorization: Bearer <token>" in r.json()["detail"] and r.headers["www-authenticate"] == "Bearer"
    r = c.get("/v1/tenants/acme/operations", headers=tokens.bearer("not-a-token"))
    assert r.status_code == 401 and r.json()["detail"] == "unknown token"
    assert snapshot(state, provider, emitter) == before
    assert c.get("/healthz").status_code == 200 and c.get("/metrics").status_code == 200


def test_wrong_tenant_gets_404_on_every_route_and_nothing_changes(world, tokens):
    c, provider, emitter, state = world
    before = snapshot(state, provider, emitter)
    globex = tokens.bearer(tokens.globex)
    for method, path, body in routes("acme", "fo-1"):
        exists = c.request(method, path, json=body, headers=globex)
        missing = c.request(method, path.replace("fo-1", "nope"), json=body and {**body, "id": "nope"}
                            if method == "POST" and path == "/v1/operations" else body, headers=globex)
        assert exists.status_code == 404, (method, path, exists.text)
        # Nothing inferred: an existing and a missing operation of another tenant answer alike.
        assert missing.status_code == 404 and missing.json() == exists.json(), (method, path)
        assert "fo-1" not in exists.text
    # a tenant that has no operations at all answers the same as one that has
    r = c.get("/v1/tenants/initech/operations", headers=globex)
    assert r.status_code == 404 and "initech" in r.text
    assert snapshot(state, provider, emitter) == before, "a wrong tenant's token changed something"
    st = c.get("/v1/tenants/acme/operations/fo-1", headers=tokens.bearer(tokens.acme)).json()
    assert st["status"] == "running" and len(st["servers"]) == 1


def test_a_tenant_acts_on_its_own_and_cannot_list_across_tenants(world, tokens):
    c, provider, emitter, state = world
    globex = tokens.bearer(tokens.globex)
    r = c.post("/v1/operations", json={**BODY, "tenant": "globex", "id": "fo-g"}, headers=globex)
    assert r.status_code == 202, r.text
    assert [o["id"] for o in c.get("/v1/tenants/globex/operations", headers=globex).json()] == ["fo-g"]
    r = c.get("/v1/operations", headers=globex)
    assert r.status_code == 403 and "DIALBACK_BURST_ADMIN_TOKEN" in r.text


def test_admin_token_acts_across_tenants(world, tokens):
    c, provider, emitter, state = world
    admin = tokens.bearer(tokens.admin)
    r = c.post("/v1/operations", json={**BODY, "tenant": "globex", "id": "fo-g"}, headers=admin)
    assert r.status_code == 202, r.text
    every = {(o["tenant"], o["id"]) for o in c.get("/v1/operations", headers=admin).json()}
    assert every == {("acme", "fo-1"), ("globex", "fo-g")}
    assert c.get("/v1/tenants/acme/operations/fo-1/events", headers=admin).json()[0]["type"] == "OperationRequested"
    assert c.post("/v1/tenants/acme/operations/fo-1/cleanup", headers=admin).status_code == 202
    deadline = time.monotonic() + 20
    while c.get("/v1/tenants/acme/operations/fo-1", headers=admin).json()["status"] != "cleaned":
        assert time.monotonic() < deadline, "fo-1 was not cleaned"
        time.sleep(0.05)
    assert provider.inner.list_tagged({"dialback-op": "fo-1", "dialback-tenant": "acme"}) == []


def test_tokens_never_appear_in_answers_events_or_logs(world, tokens, caplog):
    c, provider, emitter, state = world
    caplog.set_level(logging.DEBUG)
    secrets_ = [tokens.acme, tokens.globex, tokens.admin, "unknown-token-xyz-123"]
    answers = []
    for token in secrets_:
        for tenant in ("acme", "globex"):
            for method, path, body in routes(tenant, "fo-1") + [("GET", "/v1/operations", None)]:
                r = c.request(method, path, json=body, headers=tokens.bearer(token))
                answers.append(r.text + repr(dict(r.headers)))
    files, _, _ = snapshot(state, provider, emitter)
    for token in secrets_:
        assert not any(token in a for a in answers)
        assert token not in caplog.text
        assert not any(token.encode() in data for data in files.values())
        assert token not in repr(emitter.events)
    assert len(answers) == 4 * 2 * 8


def test_admin_token_settings(tmp_path, memory_provider, image_source, tokens):
    engine = Engine(EventLog(tmp_path), memory_provider, image_source, BurstUsage(None))
    for placeholder in ("changeme", "short-token"):
        with pytest.raises(ValueError, match="DIALBACK_BURST_ADMIN_TOKEN") as err:
            create_app(BurstSettings(tenants_file=tokens.tenants_file, burst_admin_token=placeholder), engine=engine)
        assert placeholder not in str(err.value)
    # blank = nobody is admin: an empty or blank bearer is never the admin
    app = create_app(BurstSettings(tenants_file=tokens.tenants_file, burst_admin_token="  "), engine=engine)
    assert app.state.admin_token is None
    with TestClient(app) as c:
        assert c.get("/v1/operations", headers={"Authorization": "Bearer   "}).status_code == 401
        assert c.get("/v1/operations", headers=tokens.bearer(tokens.acme)).status_code == 403


def test_hooks_are_the_providers_to_set(world, tokens):
    c, provider, emitter, state = world
    before = snapshot(state, provider, emitter)
    body = {**BODY, "id": "fo-h", "hook": ["/bin/sh", "-c", "env"]}
    r = c.post("/v1/operations", json=body, headers=tokens.bearer(tokens.acme))
    assert r.status_code == 403 and "admin token" in r.json()["detail"]["message"], r.text
    assert snapshot(state, provider, emitter) == before, "a refused hook changed something"
    r = c.post("/v1/operations", json=body, headers=tokens.bearer(tokens.admin))
    assert r.status_code == 202, r.text


def test_a_tenant_fails_back_only_into_its_own_failback_directory(tmp_path, memory_provider, image_source, tokens,
                                                                  globex_image):
    engine = Engine(EventLog(tmp_path / "ev"), memory_provider, image_source, BurstUsage(MemoryEmitter("/b")))
    root = tmp_path / "sites"
    app = create_app(BurstSettings(burst_tick_seconds=3600, burst_failback_root=root, **tokens.settings()),
                     engine=engine)
    acme = tokens.bearer(tokens.acme)
    with TestClient(app) as c:
        for target in ("/etc/passwd", str(root / "globex" / "disk.img"), str(root / "acme" / ".." / "x.img")):
            r = c.post("/v1/tenants/acme/operations/fo-1/failback", json={**FAILBACK, "target": target}, headers=acme)
            assert r.status_code == 403 and "failback directory" in r.text, (target, r.text)
        # inside its directory the request passes the path check (and is refused later, for another reason)
        r = c.post("/v1/tenants/acme/operations/fo-1/failback",
                   json={**FAILBACK, "target": str(root / "acme" / "disk.img")}, headers=acme)
        assert r.status_code != 403 and "failback directory" not in r.text, r.text
