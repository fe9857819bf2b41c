"""ingest.bytes usage events on a real Kafka: one per newly acknowledged batch, duplicates never counted."""

from __future__ import annotations

import secrets

import pytest
from fastapi.testclient import TestClient

from services.ingest.app import create_app
from services.ingest.config import IngestSettings
from services.ingest.usage import event_id
from shared.auth import TenantAuth, create_tenant
from shared.usage import Meter, parse_event

from .ingest_helpers import BATCH, batch
from .kafka_helpers import read_topic

pytestmark = pytest.mark.integration


def test_usage_events_reach_kafka_once_per_acknowledged_batch(kafka_bootstrap, tmp_path, monkeypatch):
    monkeypatch.delenv("DIALBACK_MASTER_KEY_FILE", raising=False)
    tenant = "it-" + secrets.token_hex(4)
    path = tmp_path / "tenants.json"
    auth = {"Authorization": f"Bearer {create_tenant(path, tenant)}"}
    topic = f"dialback.usage.it-{secrets.token_hex(4)}"  # own topic on the shared broker
    settings = IngestSettings(kafka_bootstrap=kafka_bootstrap, tenants_file=path, produce_timeout_s=5,
                              usage_topic=topic)
    sent = [(1, 4, 4096), (5, 7, 1024), (1, 4, 4096), (8, 10, 512)]  # the third is a duplicate resend
    with TestClient(create_app(settings, auth=TenantAuth(path))) as c:
        r = c.put("/v1/groups/g1", headers=auth, json={"volumes": [{"volume": "disk0", "size": 1 << 30}]})
        assert r.status_code == 200, r.text
        for first, last, size in sent:
            r = c.post("/v1/groups/g1/batches", content=batch(first, last, size=size),
                       headers={**auth, "Content-Type": BATCH})
            assert r.status_code == 200, r.text
    # leaving the client closes the app, which flushes the emitter
    events = [parse_event(v) for _, v, _, _ in read_topic(kafka_bootstrap, topic)]
    assert [e.id for e in events] == [event_id(tenant, "g1", a, b) for a, b in ((1, 4), (5, 7), (8, 10))]
    assert all(e.meter is Meter.INGEST_BYTES and e.tenant == tenant and e.subject == f"tenants/{tenant}/groups/g1"
               and e.source == "/dialback/ingest" for e in events)
    assert sum(e.quantity for e in events) == 4 * 4096 + 3 * 1024 + 3 * 512


def test_usage_can_be_switched_off(kafka_bootstrap, tmp_path, monkeypatch):
    monkeypatch.delenv("DIALBACK_MASTER_KEY_FILE", raising=False)
    path = tmp_path / "tenants.json"
    create_tenant(path, "it-" + secrets.token_hex(4))
    settings = IngestSettings(kafka_bootstrap=kafka_bootstrap, tenants_file=path, ingest_usage=False)
    app = create_app(settings, auth=TenantAuth(path), preload=False)
    assert app.state.service.usage is None
    on = create_app(settings.model_copy(update={"ingest_usage": None}), auth=TenantAuth(path), preload=False)
    assert on.state.service.usage is not None
