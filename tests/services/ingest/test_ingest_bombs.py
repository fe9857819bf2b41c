"""Ingest refuses decompression bombs and absurd volume sizes: a clear 4xx, nothing produced, memory flat."""

from __future__ import annotations

import json

from .ingest_helpers import VOLUME_SIZE, post, register

from services.ingest.config import IngestSettings
from shared.frames import MAX_RECORD_BYTES
from shared.tenancy import control_topic, writes_topic
from tests.shared.bombs import BOMB_BYTES, bomb_batch, peak_growth, raw_batch, raw_record

BOUND = 32 << 20


def _writes(harness):
    return harness.broker.topics.get(writes_topic("acme"), [])


def _events(harness):
    return [json.loads(m.value) for m in harness.broker.topics.get(control_topic("acme"), [])]


def _refused_unchanged(client, harness, tenants, before: list) -> None:
    assert _writes(harness) == []
    assert _events(harness) == before
    got = client.get("/v1/groups/g1", headers=tenants.headers("acme"))
    assert got.json()["acked_through"] == 0


def test_an_8kb_body_declaring_256mib_is_refused_without_inflating(client, harness, tenants):
    register(client, tenants, "acme", "g1", volumes=(("disk0", 1 << 30),))
    before = _events(harness)
    body = bomb_batch(declared=BOMB_BYTES)
    assert len(body) < 16 << 10
    with peak_growth() as peak:
        r = post(client, tenants, "acme", "g1", body)
    assert r.status_code == 400, r.text
    assert str(MAX_RECORD_BYTES) in r.json()["detail"] and "limit" in r.json()["detail"]
    assert peak[0] < BOUND, f"ingest grew the heap by {peak[0] >> 20} MiB for an 8 KB body"
    _refused_unchanged(client, harness, tenants, before)


def test_a_record_within_the_cap_that_inflates_to_256mib_is_refused_with_memory_flat(client, harness, tenants):
    register(client, tenants, "acme", "g1")
    before = _events(harness)
    for content_size in (True, False):
        body = bomb_batch(declared=MAX_RECORD_BYTES, content_size=content_size)
        with peak_growth() as peak:
            r = post(client, tenants, "acme", "g1", body)
        assert r.status_code == 400, r.text
        assert peak[0] < BOUND, f"ingest grew the heap by {peak[0] >> 20} MiB"
        assert "limit" in r.json()["detail"]
    _refused_unchanged(client, harness, tenants, before)


def test_a_declared_length_just_over_the_cap_is_refused(client, harness, tenants):
    import zstandard

    register(client, tenants, "acme", "g1")
    before = _events(harness)
    n = MAX_RECORD_BYTES + 1
    body = raw_batch(raw_record("disk0", 1, 0, n, zstandard.ZstdCompressor().compress(bytes(n))))
    r = post(client, tenants, "acme", "g1", body)
    assert r.status_code == 400 and str(MAX_RECORD_BYTES) in r.json()["detail"], r.text
    _refused_unchanged(client, harness, tenants, before)


def test_volume_size_1_shl_62_is_refused_at_registration_naming_the_limit_and_setting(client, harness, tenants):
    r = client.put("/v1/groups/g1", headers=tenants.headers("acme"),
                   json={"volumes": [{"volume": "disk0", "size": 1 << 62}]})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "DIALBACK_INGEST_MAX_VOLUME_BYTES" in detail and str(64 << 40) in detail
    assert _events(harness) == []
    assert client.get("/v1/groups/g1", headers=tenants.headers("acme")).status_code == 404
    register(client, tenants, "acme", "g1", volumes=(("disk0", 64 << 40),))  # exactly the limit is fine


def test_the_volume_limit_is_a_setting(harness, tenants, monkeypatch):
    monkeypatch.setenv("DIALBACK_INGEST_MAX_VOLUME_BYTES", str(VOLUME_SIZE))
    harness.settings = IngestSettings(tenants_file=tenants.path)
    with harness.client() as c:
        register(c, tenants, "acme", "g1", volumes=(("disk0", VOLUME_SIZE),))
        r = c.put("/v1/groups/g2", headers=tenants.headers("acme"),
                  json={"volumes": [{"volume": "disk9", "size": VOLUME_SIZE + 1}]})
        assert r.status_code == 422 and str(VOLUME_SIZE) in r.json()["detail"], r.text
