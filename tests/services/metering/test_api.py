"""The usage and licence API over an in-process feed: auth scopes, periods, CSV, bad queries."""

import pytest
from fastapi.testclient import TestClient

from services.metering.app import create_app
from services.metering.feed import BillingFeed
from shared.licences import LicenceBook
from services.metering.lines import BillingLine
from shared.auth import OPERATE, TenantAuth, create_tenant

from tests.services.metering.helpers import at

HOUR = 3600


def line(tenant, meter, hour_off, q, type="usage", subj=None, **kw):
    hour = int(at(hour_off).timestamp() // HOUR)
    subj = subj or f"tenants/{tenant}/groups/g1"
    return BillingLine(id=f"{tenant}-{meter}-{hour}-{q}-{type}-{subj}", type=type, tenant=tenant, meter=meter,
                       unit="byte", subject=subj, hour=hour, quantity=q, events=1, version=1, **kw)


@pytest.fixture
def client(tmp_path):
    path = tmp_path / "tenants.json"
    tokens = {t: create_tenant(path, t, scopes=[OPERATE]) for t in ("acme", "globex")}
    feed = BillingFeed()
    for ln in [line("acme", "ingest.bytes", 0, 100), line("acme", "ingest.bytes", 1, 50),
               line("acme", "ingest.bytes", 1, 7, type="correction"), line("acme", "ingest.bytes", 25, 1000),
               line("acme", "ingest.bytes", 0, 9, subj="tenants/acme/groups/g2"),
               line("globex", "ingest.bytes", 0, 5)]:
        feed.apply_record(None, ln.to_json())
        feed.apply_record(None, ln.to_json())  # read twice: still one line
    book = LicenceBook()
    switched = []

    def switch(tenant, feature, group, enabled):
        lic = book.switch(tenant, feature, group, enabled, at(3).timestamp())
        book.apply_record(None, lic.to_json())
        switched.append((tenant, feature.value, group, enabled))
        return lic

    app = create_app(feed, book, TenantAuth(path), "admin-secret", switch)
    c = TestClient(app)
    c.tokens, c.switched = tokens, switched
    return c


def get(c, path, token, **params):
    return c.get(path, params=params, headers={"Authorization": f"Bearer {token}"} if token else {})


DAY = {"from": "2026-11-25T00:00:00Z", "to": "2026-11-26T00:00:00Z"}


def test_tenant_reads_own_usage_by_hour_and_day(client):
    r = get(client, "/v1/tenants/acme/usage", client.tokens["acme"], **DAY)
    assert r.status_code == 200
    assert [(x["period_start"], x["quantity"]) for x in r.json()["rows"]] == [
        ("2026-11-25T00:00:00Z", 109), ("2026-11-25T01:00:00Z", 57)]
    assert r.json()["rows"][1]["corrections"] == 1
    r = get(client, "/v1/tenants/acme/usage", client.tokens["acme"], granularity="day",
            **{"from": "2026-11-25T00:00:00Z", "to": "2026-11-27T00:00:00Z"})
    assert [(x["period_start"], x["quantity"]) for x in r.json()["rows"]] == [
        ("2026-11-25T00:00:00Z", 166), ("2026-11-26T00:00:00Z", 1000)]
    r = get(client, "/v1/tenants/acme/usage", client.tokens["acme"], by="subject", **DAY)
    assert {(x["subject"], x["period_start"]): x["quantity"] for x in r.json()["rows"]}[
        ("tenants/acme/groups/g2", "2026-11-25T00:00:00Z")] == 9


def test_tenants_cannot_see_each_other_and_only_the_provider_sees_all(client):
    assert get(client, "/v1/tenants/globex/usage", client.tokens["acme"], **DAY).status_code == 404
    assert get(client, "/v1/tenants/nosuch/usage", client.tokens["acme"], **DAY).status_code == 404
    assert get(client, "/v1/tenants/acme/usage", None, **DAY).status_code == 401
    assert get(client, "/v1/tenants/acme/usage", "wrong", **DAY).status_code == 401
    assert get(client, "/v1/usage", client.tokens["acme"], **DAY).status_code == 403
    r = get(client, "/v1/usage", "admin-secret", **DAY)
    assert r.status_code == 200 and r.json()["totals"] == {"ingest.bytes": 171}
    assert get(client, "/v1/tenants/globex/usage", "admin-secret", **DAY).json()["totals"] == {"ingest.bytes": 5}


def test_csv_export(client):
    r = get(client, "/v1/tenants/acme/usage", client.tokens["acme"], format="csv", **DAY)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = r.text.strip().splitlines()
    assert rows[0] == "tenant,meter,unit,attributes,subject,period_start,period_end,quantity,lines,corrections"
    assert rows[1:] == ["acme,ingest.bytes,byte,,,2026-11-25T00:00:00Z,2026-11-25T01:00:00Z,109,2,0",
                        "acme,ingest.bytes,byte,,,2026-11-25T01:00:00Z,2026-11-25T02:00:00Z,57,2,1"]


@pytest.mark.parametrize("params,fragment", [
    ({"from": "2026-11-25T00:30:00Z", "to": "2026-11-26T00:00:00Z"}, "boundary"),
    ({"from": "2026-11-25T05:00:00Z", "to": "2026-11-26T00:00:00Z", "granularity": "day"}, "boundary"),
    ({"from": "2026-11-26T00:00:00Z", "to": "2026-11-25T00:00:00Z"}, "after"),
])
def test_bad_queries_say_what_to_fix(client, params, fragment):
    r = get(client, "/v1/tenants/acme/usage", client.tokens["acme"], **params)
    assert r.status_code == 422 and fragment in r.json()["detail"]
    r = get(client, "/v1/tenants/acme/usage", client.tokens["acme"], granularity="week", **DAY)
    assert r.status_code == 422


def test_only_the_provider_switches_licences(client):
    h = {"Authorization": f"Bearer {client.tokens['acme']}"}
    admin = {"Authorization": "Bearer admin-secret"}
    body = {"enabled": False, "group": "g1"}
    # the tenant's own operator may not switch its protection off (that would purge its data later)
    r = client.put("/v1/tenants/acme/licences/protection", json=body, headers=h)
    assert r.status_code == 403 and "provider credential" in r.json()["detail"]
    # another tenant's licences, or a tenant that does not exist: the same 403 (scope before tenant)
    other = client.put("/v1/tenants/globex/licences/burst", json={"enabled": False}, headers=h)
    assert (other.status_code, other.json()) == (r.status_code, r.json())
    assert client.switched == []
    r = client.put("/v1/tenants/acme/licences/protection", json=body, headers=admin)
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert client.switched == [("acme", "protection", "g1", False)]
    assert client.put("/v1/tenants/acme/licences/teleport", json={"enabled": True}, headers=admin).status_code == 422
    bad = client.put("/v1/tenants/acme/licences/burst", json={"enabled": True, "group": "../x"}, headers=admin)
    assert bad.status_code == 422
    # the tenant reads its licences
    lics = client.get("/v1/tenants/acme/licences", headers=h).json()["licences"]
    assert [(x["feature"], x["group"], x["enabled"]) for x in lics] == [("protection", "g1", False)]
    assert client.get("/v1/tenants/globex/licences", headers=h).status_code == 404
    assert len(client.switched) == 1


def test_an_agent_credential_reads_no_usage_and_switches_nothing(client, tmp_path):
    from shared.auth import issue

    agent = issue(client.app.state.auth.path, "acme", ["ingest"]).token
    h = {"Authorization": f"Bearer {agent}"}
    r = get(client, "/v1/tenants/acme/usage", agent, **DAY)
    assert r.status_code == 403 and "operator credential" in r.json()["detail"]
    assert get(client, "/v1/tenants/acme/lines", agent).status_code == 403
    assert client.get("/v1/tenants/acme/licences", headers=h).status_code == 403
    assert client.put("/v1/tenants/acme/licences/protection", json={"enabled": False}, headers=h).status_code == 403
    other = get(client, "/v1/tenants/globex/usage", agent, **DAY)  # another tenant: the same 403, nothing to learn
    assert (other.status_code, other.json()) == (r.status_code, r.json())
    assert get(client, "/v1/usage", agent, **DAY).status_code == 403
    assert client.switched == []


def test_health_and_metrics(client):
    assert client.get("/healthz").json()["status"] == "ok"
    assert "dialback_metering_events_total" in client.get("/metrics").text
