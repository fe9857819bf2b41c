"""Recovery's usage events reach the real Kafka: instant_access.seconds for an export, recovery.image_bytes."""

from __future__ import annotations

import json
import secrets
import time

from fastapi.testclient import TestClient

from services.recovery.app import create_app
from services.recovery.config import RecoverySettings
from shared.auth import OPERATE, TenantAuth, create_tenant
from shared.bus.kafka import ensure_topics
from shared.tenancy import USAGE_TOPIC
from shared.usage import parse_event
from tests.services.ingest.kafka_helpers import read_topic
from tests.services.recovery.instant.history import GROUP, VOLUMES, history


def test_usage_events_on_kafka(kafka_bootstrap, minio_store, tmp_path):
    tenant = f"iu-{secrets.token_hex(4)}"
    sim = history(minio_store, tenant)
    ensure_topics(kafka_bootstrap, [USAGE_TOPIC])
    tf = tmp_path / "tenants.json"
    h = {"Authorization": f"Bearer {create_tenant(tf, tenant, scopes=[OPERATE])}"}
    settings = RecoverySettings(home=tmp_path, recovery_usage=True, kafka_bootstrap=kafka_bootstrap)
    with TestClient(create_app(minio_store, TenantAuth(tf), settings)) as client:
        e = client.post(f"/v1/groups/{GROUP}/exports", json={"volume": "disk1", "latest": True}, headers=h).json()
        time.sleep(1.2)  # at least one whole second open
        closed = client.delete(f"/v1/groups/{GROUP}/exports/{e['id']}", headers=h).json()
        r = client.get(f"/v1/groups/{GROUP}/volumes/disk0/image", params={"sequence": e["sequence"]}, headers=h)
        assert r.status_code == 200
    # Leaving the client ran the shutdown, which flushed the emitter.
    evs = [parse_event(v) for _, v, _, _ in read_topic(kafka_bootstrap, USAGE_TOPIC) if json.loads(v)["tenant"] == tenant]
    by_meter = {ev.meter.value: ev for ev in evs}
    ia = by_meter["instant_access.seconds"]
    assert ia.subject == f"tenants/{tenant}/groups/{GROUP}/exports/{e['id']}"
    assert 1 <= ia.quantity <= closed["seconds"] + 1 and ia.id.startswith(f"instant:{tenant}:{e['id']}:")
    assert by_meter["recovery.image_bytes"].quantity == VOLUMES["disk0"]
    assert len(evs) == 2
    assert sim.bucket.endswith(tenant)
