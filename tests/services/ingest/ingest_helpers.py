"""Helpers for ingest tests: batch builders, tenants, an app on in-memory logs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient

from services.ingest.app import create_app
from services.ingest.bus.memory import MemoryBroker, MemoryControlLog, MemoryWritesLog
from services.ingest.config import IngestSettings
from shared.auth import TenantAuth
from shared.crypto.transport import SEALED_CONTENT_TYPE, seal
from shared.frames import Kind, Record, data_record, encode_batch

BATCH = "application/x-dialback-batch"
VOLUME_SIZE = 1 << 30


def records(first: int, last: int, volume: str = "disk0", size: int = 4096, ts0: int = 1_000) -> list[Record]:
    """Deterministic but seq-distinct DATA records first..last."""
    out = []
    for seq in range(first, last + 1):
        data = (seq.to_bytes(8, "little") * (size // 8 + 1))[:size]
        out.append(data_record(volume, seq, ts0 + seq, (seq % 1000) * size, data))
    return out


def batch(first: int, last: int, **kw) -> bytes:
    return encode_batch(records(first, last, **kw))


def bookmark(volume: str, seq: int, name: str) -> Record:
    return Record(volume, seq, 1_000 + seq, 0, 0, Kind.BOOKMARK, payload=name.encode())


@dataclass
class Tenants:
    path: Path
    tokens: dict[str, str]

    def headers(self, tenant: str, **extra) -> dict:
        return {"Authorization": f"Bearer {self.tokens[tenant]}", **extra}


@dataclass
class Harness:
    broker: MemoryBroker
    writes: MemoryWritesLog
    control: MemoryControlLog
    tenants: Tenants
    settings: IngestSettings

    def app(self, **kw):
        return create_app(self.settings, writes=self.writes, control=self.control,
                          auth=TenantAuth(self.tenants.path), **kw)

    def client(self, **kw) -> TestClient:
        return TestClient(self.app(**kw))


def register(client: TestClient, tenants: Tenants, tenant: str, group: str, volumes=(("disk0", VOLUME_SIZE),)):
    r = client.put(f"/v1/groups/{group}", headers=tenants.headers(tenant),
                   json={"volumes": [{"volume": v, "size": s} for v, s in volumes]})
    assert r.status_code == 200, r.text
    return r


def post(client: TestClient, tenants: Tenants, tenant: str, group: str, body: bytes):
    return client.post(f"/v1/groups/{group}/batches", content=body,
                       headers=tenants.headers(tenant, **{"Content-Type": BATCH}))


def sealed(key: bytes, tenant: str, group: str, first: int, last: int, **kw) -> bytes:
    """batch(first, last) sealed for (tenant, group) under ``key``."""
    return seal(key, tenant, group, first, last, batch(first, last, **kw))


def post_sealed(client: TestClient, tenants: Tenants, tenant: str, group: str, body: bytes):
    return client.post(f"/v1/groups/{group}/batches", content=body,
                       headers=tenants.headers(tenant, **{"Content-Type": SEALED_CONTENT_TYPE}))
