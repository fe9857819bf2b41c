"""No broker listening at all: ingest still starts, answers 503 with Retry-After, acks nothing."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from deploy.local.process import free_port
from services.ingest.app import create_app
from services.ingest.config import IngestSettings
from shared.auth import TenantAuth

from .ingest_helpers import BATCH, batch


def test_unreachable_kafka_is_503_not_a_crash(tenants):
    settings = IngestSettings(kafka_bootstrap=f"127.0.0.1:{free_port()}", tenants_file=tenants.path,
                              produce_timeout_s=1)
    t0 = time.monotonic()
    with TestClient(create_app(settings, auth=TenantAuth(tenants.path))) as c:
        started = time.monotonic() - t0
        assert c.get("/healthz").status_code == 200
        r = c.put("/v1/groups/g1", headers=tenants.headers("acme"),
                  json={"volumes": [{"volume": "disk0", "size": 4096}]})
        assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0
        assert "Kafka" in r.json()["detail"]
        p = c.post("/v1/groups/g1/batches", content=batch(1, 1),
                   headers=tenants.headers("acme", **{"Content-Type": BATCH}))
        assert p.status_code == 503
        assert c.get("/v1/groups/g1", headers=tenants.headers("globex")).status_code == 503
        # Auth is checked before Kafka is needed.
        assert c.get("/v1/groups/g1", headers={"Authorization": "Bearer x"}).status_code == 401
    assert started < 30, "startup must not wait out a timeout per tenant"
