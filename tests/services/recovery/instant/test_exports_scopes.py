"""Recovery takes tenant operator credentials only, and refuses exports while instant access is switched off."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from services.recovery.app import create_app
from services.recovery.config import RecoverySettings
from shared.auth import OPERATE, PROVIDER, TenantAuth, create_tenant, issue
from shared.licences import BookView, LicenceBook
from shared.objectstore.memory import MemoryObjectStore
from shared.usage import Feature
from tests.services.recovery.instant.history import GROUP, history, lease_keys


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def world(tmp_path):
    store = MemoryObjectStore()
    sim = history(store, "acme")
    tf = tmp_path / "tenants.json"
    agent = create_tenant(tf, "acme")  # the agent's credential, as `dialback tenant create` makes it
    operator = issue(tf, "acme", [OPERATE]).token
    book = LicenceBook()
    app = create_app(store, TenantAuth(tf), RecoverySettings(home=tmp_path, recovery_work_dir=tmp_path / "work"),
                     licences=BookView(book))
    with TestClient(app) as client:
        yield client, store, sim, book, {"agent": agent, "operator": operator, "tf": tf}


def switch(book: LicenceBook, feature: Feature, group: str | None, enabled: bool, at: float) -> None:
    lic = book.switch("acme", feature, group, enabled, at)
    book.apply_record(lic.key, lic.to_json())


def test_an_agent_credential_cannot_list_recover_or_export(world):
    client, store, sim, _, tok = world
    provider = issue(tok["tf"], None, [PROVIDER]).token
    for token in (tok["agent"], provider):
        h = bearer(token)
        calls = [client.get(f"/v1/groups/{GROUP}/points", headers=h),
                 client.post(f"/v1/groups/{GROUP}/recoveries", json={"volume": "disk0", "at": {"sequence": 5}},
                             headers=h),
                 client.get(f"/v1/groups/{GROUP}/volumes/disk0/image", params={"sequence": 5}, headers=h),
                 client.post(f"/v1/groups/{GROUP}/verify", headers=h),
                 client.post(f"/v1/groups/{GROUP}/exports", json={"volume": "disk0", "latest": True}, headers=h),
                 client.get(f"/v1/groups/{GROUP}/exports", headers=h)]
        for r in calls:
            assert r.status_code == 403, (r.request.url, r.text)
            assert "operator credential" in r.json()["detail"]
    assert lease_keys(store, sim.bucket) == []
    assert client.get(f"/v1/groups/{GROUP}/points", headers=bearer(tok["operator"])).status_code == 200


def test_exports_are_refused_while_instant_access_is_off(world):
    client, store, sim, book, tok = world
    h = bearer(tok["operator"])
    body = {"volume": "disk0", "latest": True}
    for group, at in ((GROUP, 1_800_000_000.0), (None, 1_800_000_001.0)):
        switch(book, Feature.INSTANT_ACCESS, group, False, at)
        r = client.post(f"/v1/groups/{GROUP}/exports", json=body, headers=h)
        assert r.status_code == 403, r.text
        assert "instant access (exports) is switched off" in r.json()["detail"]
        assert "dialback license on acme instant_access" in r.json()["detail"]
        switch(book, Feature.INSTANT_ACCESS, group, True, at + 10)
    assert lease_keys(store, sim.bucket) == []
    # listing recovery points is not an instant-access feature: it keeps working
    switch(book, Feature.INSTANT_ACCESS, None, False, 1_800_000_100.0)
    assert client.get(f"/v1/groups/{GROUP}/points", headers=h).status_code == 200
    switch(book, Feature.INSTANT_ACCESS, None, True, 1_800_000_200.0)
    r = client.post(f"/v1/groups/{GROUP}/exports", json=body, headers=h)
    assert r.status_code == 201, r.text
    assert client.delete(f"/v1/groups/{GROUP}/exports/{r.json()['id']}", headers=h).status_code == 200
