"""Retention's GroupBroken rewinds ingest so the agent resends; GroupRepaired clears it (real Kafka)."""

from __future__ import annotations

import secrets
import time

import pytest

from services.ingest.app import create_app
from services.ingest.config import IngestSettings
from shared.auth import TenantAuth, create_tenant
from shared.broken import broken_event, encode_event, event_key, repaired_event
from shared.bus.kafka import Producer
from shared.frames import decode_batch
from shared.tenancy import control_topic, writes_topic

from .ingest_helpers import BATCH, batch
from .kafka_helpers import read_topic

pytestmark = pytest.mark.integration


def _group(c, headers) -> dict:
    r = c.get("/v1/groups/g1", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def _wait_group(c, headers, cond, what: str) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        g = _group(c, headers)
        if cond(g):
            return g
        time.sleep(0.2)
    raise AssertionError(f"ingest never showed {what}: {g}")


def test_broken_group_is_rewound_resend_is_produced_and_repair_clears(kafka_bootstrap, tmp_path):
    from fastapi.testclient import TestClient

    tenant = "br-" + secrets.token_hex(4)
    path = tmp_path / "tenants.json"
    headers = {"Authorization": f"Bearer {create_tenant(path, tenant)}"}
    settings = IngestSettings(kafka_bootstrap=kafka_bootstrap, tenants_file=path, produce_timeout_s=5,
                              ingest_control_follow_s=0.2)

    def app():
        return TestClient(create_app(settings, auth=TenantAuth(path)))

    def post(c, first, last):
        return c.post("/v1/groups/g1/batches", content=batch(first, last),
                      headers={**headers, "Content-Type": BATCH})

    p = Producer(kafka_bootstrap)
    with app() as c:
        assert c.put("/v1/groups/g1", headers=headers,
                     json={"volumes": [{"volume": "disk0", "size": 1 << 30}]}).status_code == 200
        assert post(c, 1, 10).json()["acked_through"] == 10
        assert post(c, 11, 20).json()["acked_through"] == 20
        # Retention lost 11.. (as shared.broken describes it) and says so on the control log.
        p.send_sync(control_topic(tenant), encode_event(broken_event("g1", 11, 15)), key=event_key("g1"))
        g = _wait_group(c, headers, lambda g: "broken" in g, "the broken mark")
        assert g["broken"] == {"expected": 11} and g["acked_through"] == 10
        r = post(c, 21, 30)  # the agent's next batch is told where to resend from
        assert r.status_code == 409 and r.json()["expected"] == 11
        # The resend is produced again, not swallowed as a duplicate.
        assert post(c, 11, 20).json()["acked_through"] == 20
        assert post(c, 21, 30).json()["acked_through"] == 30
    firsts = [decode_batch(v)[0].sequence for k, v, h, _ in read_topic(kafka_bootstrap, writes_topic(tenant))
              if k == b"g1"]
    assert firsts == [1, 11, 11, 21]
    with app() as c:  # a restarted ingest replays the same state
        g = _group(c, headers)
        assert g["broken"] == {"expected": 11} and g["acked_through"] == 30
        p.send_sync(control_topic(tenant), encode_event(repaired_event("g1", 11, 30)), key=event_key("g1"))
        g = _wait_group(c, headers, lambda g: "broken" not in g, "the repair")
        assert g["acked_through"] == 30
        assert post(c, 31, 40).json()["acked_through"] == 40
    with app() as c:
        g = _group(c, headers)
        assert "broken" not in g and g["acked_through"] == 40
