"""Fixtures for ingest tests (helpers live in ingest_helpers.py)."""

from __future__ import annotations

import os

import pytest
from .ingest_helpers import Harness, Tenants

from services.ingest.bus.memory import MemoryBroker, MemoryControlLog, MemoryWritesLog
from services.ingest.config import IngestSettings
from shared.auth import create_tenant


@pytest.fixture
def tenants(tmp_path) -> Tenants:
    path = tmp_path / "tenants.json"
    return Tenants(path, {name: create_tenant(path, name) for name in ("acme", "globex")})


@pytest.fixture
def harness(tenants, monkeypatch) -> Harness:
    for k in list(os.environ):
        if k.startswith("DIALBACK_"):
            monkeypatch.delenv(k)
    broker = MemoryBroker()
    settings = IngestSettings(tenants_file=tenants.path)
    return Harness(broker, MemoryWritesLog(broker), MemoryControlLog(broker), tenants, settings)


@pytest.fixture
def client(harness):
    with harness.client() as c:
        yield c
