"""Ingest -> Kafka -> retention over SASL_SSL (SCRAM-SHA-512) with the writes sealed in the broker's files.

A Kafka of its own serves clients only over SASL_SSL on loopback (tests/servers.py).
Ingest (in-process, real Kafka adapters) and retention (``python -m services.retention``)
connect with the DIALBACK_KAFKA_* settings; the master key is on, so every record of
the writes topic is sealed under the tenant's bus key. The test writes a known marker,
then checks that the broker's log segment files do not hold it while retention's
journal gives back every byte.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from deploy.local.process import terminate
from services.ingest.app import create_app
from services.ingest.config import IngestSettings
from services.ingest.provision import create_tenant_with_credentials
from shared.auth import TenantAuth
from shared.bus.kafka import BusUnavailable, ensure_topics
from shared.crypto.keyring import Keyring, ensure_master_key, load_master_key
from shared.crypto.transport import SEALED_CONTENT_TYPE, seal
from shared.frames import data_record, encode_batch
from shared.journal import iter_segment_records, last_sequence, read_timeline
from shared.objectstore.encrypted import EncryptedObjectStore
from shared.tenancy import tenant_bucket, writes_topic
from tests.servers import KafkaServer, StartError, cleanup, start_kafka_sasl_ssl, unavailable

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
RECORD = 4096
BATCHES, PER_BATCH = 4, 8


@pytest.fixture(scope="module")
def kafka_sasl() -> KafkaServer:
    try:
        server = start_kafka_sasl_ssl()
    except (StartError, OSError) as err:
        unavailable("Kafka (SASL_SSL)", err)
    yield server
    cleanup(server)


def _wait(pred, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tail}")


def _payload(marker: bytes, seq: int) -> bytes:
    return ((marker + b"-%06d-" % seq) * (RECORD // len(marker) + 1))[:RECORD]


def test_wrong_password_and_plaintext_clients_are_refused(kafka_sasl, monkeypatch):
    for k, v in kafka_sasl.security_env(password="not-the-password").items():
        monkeypatch.setenv(k, v)
    with pytest.raises(BusUnavailable, match="authentication failed.*DIALBACK_KAFKA_SASL_USERNAME"):
        ensure_topics(kafka_sasl.bootstrap, ["dialback.nobody.writes"], timeout=5)
    for k in kafka_sasl.security_env():
        monkeypatch.delenv(k)
    with pytest.raises(BusUnavailable, match="DIALBACK_KAFKA_SECURITY_PROTOCOL"):  # PLAINTEXT client, SASL_SSL listener
        ensure_topics(kafka_sasl.bootstrap, ["dialback.nobody.writes"], timeout=5)


def test_writes_cross_kafka_sealed_over_sasl_ssl_and_retention_rebuilds_them(kafka_sasl, minio_server,
                                                                            minio_settings, tmp_path, monkeypatch):
    tenant, group = f"sasl{secrets.token_hex(3)}", "g1"
    master = ensure_master_key(tmp_path)
    ring_path = tmp_path / "keyring.json"
    ring = Keyring(load_master_key(master), ring_path)
    tenants = tmp_path / "tenants.json"
    creds = create_tenant_with_credentials(tenants, tenant, tmp_path / "creds.json", ring).agent
    env = {"DIALBACK_KAFKA_BOOTSTRAP": kafka_sasl.bootstrap, **kafka_sasl.security_env(), **minio_settings,
           "DIALBACK_HOME": str(tmp_path), "DIALBACK_TENANTS_FILE": str(tenants),
           "DIALBACK_MASTER_KEY_FILE": str(master), "DIALBACK_KEYRING_FILE": str(ring_path),
           "DIALBACK_INGEST_USAGE": "false", "DIALBACK_RETENTION_WEB_PORT": "0",
           "DIALBACK_RETENTION_JOB_INTERVAL": "0", "DIALBACK_RETENTION_APP_ID": f"retention-{tenant}"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)

    marker = b"KAFKA-PLAINTEXT-MARKER-" + secrets.token_hex(8).encode()
    written = {}
    headers = {"Authorization": f"Bearer {creds.token}", "Content-Type": SEALED_CONTENT_TYPE}
    with TestClient(create_app(IngestSettings(), auth=TenantAuth(tenants))) as c:
        r = c.put(f"/v1/groups/{group}", headers={"Authorization": f"Bearer {creds.token}"},
                  json={"volumes": [{"volume": "disk0", "size": 1 << 30}]})
        assert r.status_code == 200, r.text
        for b in range(BATCHES):
            first = b * PER_BATCH + 1
            recs = [data_record("disk0", s, 1_000 + s, s * RECORD, _payload(marker, s))
                    for s in range(first, first + PER_BATCH)]
            written.update({s: _payload(marker, s) for s in range(first, first + PER_BATCH)})
            body = seal(creds.transport_key, tenant, group, first, first + PER_BATCH - 1, encode_batch(recs))
            r = c.post(f"/v1/groups/{group}/batches", content=body, headers=headers)
            assert r.status_code == 200, r.text
    last = BATCHES * PER_BATCH

    log = tmp_path / "retention.log"
    proc = subprocess.Popen([sys.executable, "-m", "services.retention"], cwd=ROOT, env={**os.environ, **env},
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    store, bucket = EncryptedObjectStore(minio_server.store(), ring), tenant_bucket(tenant)
    try:
        _wait(lambda: store.bucket_exists(bucket) and last_sequence(store, bucket, group) == last, 180,
              "retention to journal every record over SASL_SSL", log)
    finally:
        terminate(proc)

    got = {}
    for entry in read_timeline(store, bucket, group):
        for rec in iter_segment_records(store.get(bucket, entry.segment)):
            got[rec.sequence] = (rec.offset, bytes(rec.data()))
    assert got == {s: (s * RECORD, p) for s, p in written.items()}, "retention did not rebuild the exact bytes"

    # What rests in the broker's files: the records are there (size), the marker is not.
    parts = [d for d in kafka_sasl.log_dir().iterdir() if d.name.startswith(writes_topic(tenant) + "-")]
    segments = [f for d in parts for f in d.glob("*.log")]
    assert sum(f.stat().st_size for f in segments) > len(written) * RECORD
    leaked = [str(f) for f in kafka_sasl.log_dir().rglob("*") if f.is_file() and marker in f.read_bytes()]
    assert not leaked, f"plaintext of the writes found in Kafka's files: {leaked}"
