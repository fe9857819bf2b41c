"""Exports API on the in-memory store: refusals are 4xx and leave no export and no lease."""

from __future__ import annotations

import pytest

from agent.nbd.client import connect
from agent.nbd.protocol import TFLAG_READ_ONLY

from shared.objectstore.memory import MemoryObjectStore
from shared.usage import Meter
from tests.services.recovery.instant.history import GROUP, VOLUMES, history, lease_keys, make_client, nbd_sha256, sha


@pytest.fixture
def api(tmp_path):
    store = MemoryObjectStore()
    sim = history(store, "acme")
    history(store, "other", seed=3)
    client, headers, emitter = make_client(store, tmp_path, ("acme", "other"))
    with client:
        yield client, headers, store, sim, emitter


def bad_requests(sim, latest: int) -> list[tuple[dict, int]]:
    return [
        ({"volume": "nope", "latest": True}, 404),
        ({"volume": "disk0", "at": {"sequence": latest + 1000}}, 422),
        ({"volume": "disk0", "at": {"sequence": 1}}, 422),  # older than what retention kept
        ({"volume": "disk0", "at": {"timestamp_ns": 1, "bookmark": "x"}}, 400),
        ({"volume": "disk0", "at": {"sequence": latest}, "latest": True}, 400),
        ({"volume": "disk0"}, 400),
        ({"volume": "disk0", "latest": True, "mode": "scratch"}, 400),
        ({"volume": "all", "latest": True}, 400),
        ({"volume": "disk0", "at": {"bookmark": "no-such-bookmark"}}, 404),
    ]


def test_refusals_change_nothing(api):
    client, h, store, sim, emitter = api
    latest = client.get(f"/v1/groups/{GROUP}/points", headers=h["acme"]).json()["latest"]["sequence"]
    for body, status in bad_requests(sim, latest):
        r = client.post(f"/v1/groups/{GROUP}/exports", json=body, headers=h["acme"])
        assert r.status_code == status, (body, r.text)
        assert r.json()["detail"]
    assert client.post(f"/v1/groups/{GROUP}/exports", json={"volume": "disk0", "latest": True}).status_code == 401
    assert client.post(f"/v1/groups/{GROUP}/exports", json={"volume": "disk0", "latest": True},
                       headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post("/v1/groups/nogroup/exports", json={"volume": "disk0", "latest": True},
                       headers=h["acme"]).status_code == 404
    assert client.get(f"/v1/groups/{GROUP}/exports", headers=h["acme"]).json()["exports"] == []
    assert lease_keys(store, sim.bucket) == []
    assert emitter.events == []


def test_export_read_list_delete(api):
    client, h, store, sim, emitter = api
    r = client.post(f"/v1/groups/{GROUP}/exports", json={"volume": "disk1", "latest": True}, headers=h["acme"])
    assert r.status_code == 201, r.text
    e = r.json()
    assert e["uri"] == f"nbd://127.0.0.1:{e['port']}/{e['export_name']}" and e["mode"] == "read-only"
    assert nbd_sha256(e["port"], e["export_name"], VOLUMES["disk1"]) == sha(sim.reference(e["sequence"])["disk1"])
    with connect("127.0.0.1", e["port"], e["export_name"]) as c:
        assert c.flags & TFLAG_READ_ONLY, "a read-only export is announced read-only"
    assert len(lease_keys(store, sim.bucket)) == 1
    # Another tenant neither sees nor stops it.
    assert client.get(f"/v1/groups/{GROUP}/exports", headers=h["other"]).json()["exports"] == []
    assert client.get(f"/v1/groups/{GROUP}/exports/{e['id']}", headers=h["other"]).status_code == 404
    assert client.delete(f"/v1/groups/{GROUP}/exports/{e['id']}", headers=h["other"]).status_code == 404
    assert [x["id"] for x in client.get(f"/v1/groups/{GROUP}/exports", headers=h["acme"]).json()["exports"]] \
        == [e["id"]]
    shown = client.get(f"/v1/groups/{GROUP}/exports/{e['id']}", headers=h["acme"]).json()
    assert shown["port"] == e["port"]
    listed = client.get(f"/v1/groups/{GROUP}/exports", headers=h["acme"]).json()["exports"]
    for later in (shown, *listed):  # the secret was given once, to the creator
        assert "export_name" not in later and "uri" not in later and e["export_name"] not in str(later)
    assert client.delete(f"/v1/groups/{GROUP}/exports/{e['id']}", headers=h["acme"]).status_code == 200
    assert client.get(f"/v1/groups/{GROUP}/exports/{e['id']}", headers=h["acme"]).status_code == 404
    assert lease_keys(store, sim.bucket) == []


def test_shutdown_closes_exports_and_bills(tmp_path):
    store = MemoryObjectStore()
    sim = history(store, "acme")
    client, h, emitter = make_client(store, tmp_path, ("acme",))
    with client:
        r = client.post(f"/v1/groups/{GROUP}/exports", json={"volume": "disk0", "latest": True, "mode": "overlay"},
                        headers=h["acme"])
        assert r.status_code == 201, r.text
        assert "overlay_path" not in r.json() and str(tmp_path) not in r.text  # no provider paths
        assert list((tmp_path / "work").glob("dialback-overlay-*"))
    assert lease_keys(store, sim.bucket) == []
    assert not list((tmp_path / "work").glob("dialback-overlay-*"))
    assert all(e.meter == Meter.INSTANT_ACCESS_SECONDS for e in emitter.events)


def test_image_download_emits_image_bytes(api):
    client, h, store, sim, emitter = api
    r = client.get(f"/v1/groups/{GROUP}/volumes/disk0/image", params={"sequence": sim.seq}, headers=h["acme"])
    if r.status_code == 422:  # the sim's last write may be past what retention flushed
        latest = client.get(f"/v1/groups/{GROUP}/points", headers=h["acme"]).json()["latest"]["sequence"]
        r = client.get(f"/v1/groups/{GROUP}/volumes/disk0/image", params={"sequence": latest}, headers=h["acme"])
    assert r.status_code == 200
    ev = [e for e in emitter.events if e.meter == Meter.RECOVERY_IMAGE_BYTES]
    assert [(e.tenant, e.quantity) for e in ev] == [("acme", VOLUMES["disk0"])]
    assert ev[0].subject == f"tenants/acme/groups/{GROUP}/volumes/disk0" and ev[0].id.startswith("recovery-image:")
