"""Ingest on real Kafka enforces what metering publishes: protection off -> batches refused, on -> taken."""

from __future__ import annotations

import secrets
import time
import uuid

import pytest
from fastapi.testclient import TestClient

from services.ingest.app import create_app
from services.ingest.config import IngestSettings
from services.metering.config import MeteringSettings
from services.metering.service import LicenceSwitcher
from shared.auth import TenantAuth, create_tenant
from shared.licences import LicenceBook, LicenceWatch
from shared.usage import Feature

from .ingest_helpers import BATCH, batch

pytestmark = pytest.mark.integration


def test_metering_switch_off_stops_ingest_and_switch_on_resumes(kafka_bootstrap, tmp_path):
    tenant = "lic-" + secrets.token_hex(4)
    path = tmp_path / "tenants.json"
    h = {"Authorization": f"Bearer {create_tenant(path, tenant)}"}
    topic = f"dialback.licensing.{uuid.uuid4().hex[:8]}"
    settings = IngestSettings(kafka_bootstrap=kafka_bootstrap, tenants_file=path, produce_timeout_s=5,
                              licensing_topic=topic)
    switch = LicenceSwitcher(MeteringSettings(kafka_bootstrap=kafka_bootstrap, licensing_topic=topic), LicenceBook())
    app = create_app(settings, auth=TenantAuth(path))
    assert isinstance(app.state.licences, LicenceWatch)  # the default on Kafka: the licensing topic

    def post(c, first, last):
        return c.post("/v1/groups/g1/batches", content=batch(first, last), headers={**h, "Content-Type": BATCH})

    with TestClient(app) as c:
        assert c.put("/v1/groups/g1", headers=h, json={"volumes": [{"volume": "disk0", "size": 1 << 30}]}
                     ).status_code == 200
        deadline = time.monotonic() + 30
        while not app.state.licences.caught_up.is_set():
            assert time.monotonic() < deadline, "ingest never read the licensing topic"
            time.sleep(0.05)
        assert post(c, 1, 2).status_code == 200
        switch(tenant, Feature.PROTECTION, "g1", False)
        deadline = time.monotonic() + 30
        # the switch reaches ingest within a poll; a batch taken before it arrived is fine (and
        # a resend of it is refused too once it has: the licence is checked before anything else)
        while (r := post(c, 3, 3)).status_code == 200:
            assert time.monotonic() < deadline, "ingest kept taking batches after protection was switched off"
            time.sleep(0.1)
        assert r.status_code == 403 and r.headers["dialback-reason"] == "licence", r.text
        assert "protection is switched off" in r.json()["detail"]
        switch(tenant, Feature.PROTECTION, "g1", True)
        deadline = time.monotonic() + 30
        while (r := post(c, 3, 4)).status_code == 403:
            assert time.monotonic() < deadline, "ingest did not resume after protection was switched on"
            time.sleep(0.1)
        assert r.status_code == 200 and r.json()["acked_through"] == 4, r.text
