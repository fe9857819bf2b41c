"""Credentials over the metering API (provider only): issue, rotate with an overlap, revoke; no downtime."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from services.metering.app import create_app
from services.metering.feed import BillingFeed
from shared.licences import LicenceBook
from shared.auth import INGEST, OPERATE, TenantAuth, create_tenant, issue, token_digest

ADMIN = "admin-secret-0123456789"
DAY = {"from": "2026-11-25T00:00:00Z", "to": "2026-11-26T00:00:00Z"}


class Clock:
    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(tmp_path):
    path, clock = tmp_path / "tenants.json", Clock()
    agent = create_tenant(path, "acme")
    operator = issue(path, "acme", [OPERATE]).token
    create_tenant(path, "globex", scopes=[OPERATE])

    def switch(*_a):
        raise AssertionError("no licence is switched here")

    app = create_app(BillingFeed(), LicenceBook(), TenantAuth(path, clock=clock), ADMIN, switch)
    return TestClient(app), clock, {"agent": agent, "operator": operator}, path


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def usage(c, token):
    return c.get("/v1/tenants/acme/usage", params=DAY, headers=bearer(token)).status_code


def test_only_a_provider_manages_credentials(world):
    c, _, tok, _ = world
    base = "/v1/tenants/acme/credentials"
    for who in ("agent", "operator"):
        assert c.get(base, headers=bearer(tok[who])).status_code == 403, who
        assert c.post(base, json={"scopes": [OPERATE]}, headers=bearer(tok[who])).status_code == 403, who
    # another tenant's credentials: the same 403 as its own tenant's, nothing leaks
    other = c.get("/v1/tenants/globex/credentials", headers=bearer(tok["operator"]))
    own = c.get(base, headers=bearer(tok["operator"]))
    assert (other.status_code, other.json()) == (own.status_code, own.json()) and other.status_code == 403
    listed = c.get(base, headers=bearer(ADMIN)).json()["credentials"]
    assert sorted(tuple(x["scopes"]) for x in listed) == [(INGEST,), (OPERATE,)]
    assert all("sha256" not in x and x["state"] == "active" for x in listed)
    assert c.post(base, json={"scopes": ["provider"]}, headers=bearer(ADMIN)).status_code == 422
    assert c.get("/v1/tenants/nobody/credentials", headers=bearer(ADMIN)).status_code == 404


def test_rotation_keeps_both_tokens_during_the_overlap_then_the_old_one_is_401(world):
    c, clock, tok, path = world
    base = "/v1/tenants/acme/credentials"
    op_id = next(x["id"] for x in c.get(base, headers=bearer(ADMIN)).json()["credentials"] if x["scopes"] == [OPERATE])
    r = c.post(f"{base}/{op_id}/rotate", json={"overlap_s": 300}, headers=bearer(ADMIN))
    assert r.status_code == 201, r.text
    new = r.json()["token"]
    assert r.json()["old"]["not_after"] == clock.now + 300 and r.json()["old"]["state"] == "expiring"
    assert new not in path.read_text() and token_digest(new) in path.read_text()
    assert usage(c, tok["operator"]) == 200 and usage(c, new) == 200
    clock.now += 299
    assert usage(c, tok["operator"]) == 200
    clock.now += 1
    assert usage(c, tok["operator"]) == 401 and usage(c, new) == 200
    # the token is never shown again
    assert new not in c.get(base, headers=bearer(ADMIN)).text


def test_revoked_token_is_401_at_once(world):
    c, _, tok, _ = world
    base = "/v1/tenants/acme/credentials"
    r = c.post(base, json={"scopes": [OPERATE], "label": "ci"}, headers=bearer(ADMIN))
    assert r.status_code == 201 and r.json()["credential"]["label"] == "ci"
    extra, cid = r.json()["token"], r.json()["credential"]["id"]
    assert usage(c, extra) == 200
    r = c.delete(f"{base}/{cid}", headers=bearer(ADMIN))
    assert r.status_code == 200 and r.json()["credential"]["state"] == "revoked"
    assert usage(c, extra) == 401 and usage(c, tok["operator"]) == 200
    assert c.delete(f"{base}/c-nope", headers=bearer(ADMIN)).status_code == 404
