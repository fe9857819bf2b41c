"""Encryption ON end to end: sealed agent→ingest batches, encrypted objects in MinIO.

A random marker written through the tap comes back byte-exact from recovery
but appears in no stored object nor in the broker's log files (records in
Kafka are sealed under the tenant's bus key), and no key ends up in a log.
"""

from __future__ import annotations

import base64
import os
import stat

import pytest

from agent.nbd.client import connect
from deploy.local.pipeline import Pipeline, sha256_file
from shared.credentials import read_credentials
from shared.tenancy import tenant_bucket

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SIZE = 4 << 20


def _write_markers_and_recover(pipeline, tmp_path) -> bytes:
    pipeline.start()
    disk = tmp_path / "enc.img"
    disk.write_bytes(bytes(SIZE))
    agent = pipeline.start_agent("enc", {"d0": disk})
    agent.wait_shipped()
    marker = os.urandom(64)  # incompressible: in a plaintext object it would appear verbatim
    with connect(agent.nbd_socket, None, "d0") as c:
        for i in range(8):
            c.pwrite(os.urandom(1000) + marker + os.urandom(3032), 65536 * i + 4096)
        c.flush()
    last = agent.wait_shipped()
    pipeline.wait_recoverable("enc", last)
    out = tmp_path / "recovered.img"
    r = pipeline.download("enc", "d0", out, sequence=last)
    assert r.status_code == 200, r.text
    assert sha256_file(out) == sha256_file(disk)
    assert marker in out.read_bytes()
    return marker


def _stored(minio_store, tenant: str) -> dict[str, bytes]:
    objects = list(minio_store.list(tenant_bucket(tenant)))
    assert any(o.key.endswith(".seg") for o in objects), [o.key for o in objects]
    return {o.key: minio_store.get(tenant_bucket(tenant), o.key) for o in objects}


def _in_kafka_files(kafka_server, tenant: str, marker: bytes) -> bool | None:
    """Whether the broker's files of the tenant's writes topic hold ``marker`` (None: an external Kafka)."""
    if kafka_server.tmp is None:
        return None
    files = [f for d in kafka_server.log_dir().glob(f"dialback.{tenant}.writes-*") for f in d.iterdir()]
    assert files, f"no log files of tenant {tenant}'s writes topic under {kafka_server.log_dir()}"
    return any(marker in f.read_bytes() for f in files if f.is_file())


def test_marker_recovers_byte_exact_and_is_in_no_stored_object(pipeline, tmp_path, minio_store, kafka_server):
    master = pipeline.home / "master.key"
    assert stat.S_IMODE(master.stat().st_mode) == 0o600
    assert pipeline.env["DIALBACK_MASTER_KEY_FILE"] == str(master)
    key = read_credentials(pipeline.credentials).transport_key
    assert key is not None, "the pipeline's tenant must have a transport key"
    marker = _write_markers_and_recover(pipeline, tmp_path)
    for name, raw in _stored(minio_store, pipeline.tenant).items():
        assert raw[:5] == b"DBE2\x02", f"{name} is not encrypted (in format DBE2)"
        assert marker not in raw, f"marker found in plaintext in {name}"
    assert _in_kafka_files(kafka_server, pipeline.tenant, marker) in (False, None), "plaintext writes in Kafka"
    logs = "\n".join(m.log_file.read_text(errors="replace")
                     for m in [*pipeline.services.values(), *(a.managed for a in pipeline.agents)])
    assert logs.strip(), "the processes wrote no logs to search"
    for form in (key.hex(), base64.b64encode(key).decode(), master.read_text().strip()):
        assert form not in logs


def test_control_without_encryption_the_marker_is_visible(stack_env, tmp_path, minio_store, kafka_server):
    """Shows the checks above have teeth: with encryption OFF the same marker is in a stored object and in Kafka."""
    p = Pipeline.create(stack_env, tmp_path / "plain-home", encrypt=False)
    try:
        assert read_credentials(p.credentials).transport_key is None
        marker = _write_markers_and_recover(p, tmp_path)
        assert any(marker in raw for raw in _stored(minio_store, p.tenant).values())
        assert _in_kafka_files(kafka_server, p.tenant, marker) in (True, None)
    finally:
        p.stop_all()
