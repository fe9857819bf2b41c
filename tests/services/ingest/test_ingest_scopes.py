"""Ingest takes only agent credentials, and refuses batches of a group whose protection is switched off."""

from __future__ import annotations

from shared.auth import OPERATE, PROVIDER, issue, list_credentials, revoke
from shared.licences import BookView, LicenceBook
from shared.tenancy import writes_topic
from shared.usage import Feature

from .ingest_helpers import BATCH, batch, post, register


def produced(harness, tenant="acme"):
    return harness.broker.topics.get(writes_topic(tenant), [])


def test_an_operator_or_provider_credential_cannot_register_or_ship(client, harness, tenants):
    register(client, tenants, "acme", "g1")
    operator = issue(tenants.path, "acme", [OPERATE]).token
    provider = issue(tenants.path, None, [PROVIDER]).token
    for token in (operator, provider):
        h = {"Authorization": f"Bearer {token}"}
        r = client.post("/v1/groups/g1/batches", content=batch(1, 1), headers={**h, "Content-Type": BATCH})
        assert r.status_code == 403, r.text
        assert "agent credential" in r.json()["detail"]
        assert client.put("/v1/groups/g2", json={"volumes": [{"volume": "d", "size": 4096}]},
                          headers=h).status_code == 403
        assert client.get("/v1/groups/g1", headers=h).status_code == 403
    assert produced(harness) == []
    assert 'dialback_ingest_batches_total{outcome="rejected",reason="forbidden"} 2.0' in client.get("/metrics").text
    # the agent's own credential still ships
    assert post(client, tenants, "acme", "g1", batch(1, 1)).status_code == 200


def test_a_revoked_agent_token_is_401_at_once(client, harness, tenants):
    register(client, tenants, "acme", "g1")
    assert post(client, tenants, "acme", "g1", batch(1, 1)).status_code == 200
    [agent] = list_credentials(tenants.path, "acme")
    revoke(tenants.path, "acme", agent.id)
    r = post(client, tenants, "acme", "g1", batch(2, 2))
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert len(produced(harness)) == 1


def test_batches_of_a_group_whose_protection_is_off_are_refused(harness, tenants):
    book = LicenceBook()
    with harness.client(licences=BookView(book)) as client:
        register(client, tenants, "acme", "g1")
        register(client, tenants, "acme", "g2", volumes=(("disk1", 1 << 30),))
        assert post(client, tenants, "acme", "g1", batch(1, 2)).status_code == 200
        lic = book.switch("acme", Feature.PROTECTION, "g1", False, 1_800_000_000.0)
        book.apply_record(lic.key, lic.to_json())
        r = post(client, tenants, "acme", "g1", batch(3, 3))
        assert r.status_code == 403 and r.headers["dialback-reason"] == "licence"
        detail = r.json()["detail"]
        assert "protection is switched off for group 'g1'" in detail and "spool" in detail
        assert "dialback license on acme protection --group g1" in detail
        assert len(produced(harness)) == 1  # nothing of the refused batch
        # another group of the tenant still ships; the tenant-wide switch stops every group
        assert post(client, tenants, "acme", "g2", batch(1, 1, volume="disk1")).status_code == 200
        lic = book.switch("acme", Feature.PROTECTION, None, False, 1_800_000_001.0)
        book.apply_record(lic.key, lic.to_json())
        assert post(client, tenants, "acme", "g2", batch(2, 2, volume="disk1")).status_code == 403
        assert post(client, tenants, "globex", "g9", batch(1, 1)).status_code == 404  # other tenants untouched
        # switched on again: the batch the agent kept is taken
        for group in (None, "g1"):
            lic = book.switch("acme", Feature.PROTECTION, group, True, 1_800_000_002.0)
            book.apply_record(lic.key, lic.to_json())
        r = post(client, tenants, "acme", "g1", batch(3, 3))
        assert r.status_code == 200 and r.json() == {"acked_through": 3}
        text = client.get("/metrics").text
        assert 'dialback_ingest_batches_total{outcome="rejected",reason="licence"} 2.0' in text
