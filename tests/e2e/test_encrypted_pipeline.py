"""Encryption ON end to end: sealed agent→ingest batches, encrypted objects in MinIO.

A random marker written through the tap comes back byte-exact from recovery
but appears in no stored object, and no key ends up in a log.
"""

from __future__ import annotations

import base64
import os
import stat

import pytest

from agent.nbd.client import connect
from deploy.local.pipeline import sha256_file
from shared.credentials import read_credentials
from shared.tenancy import tenant_bucket

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SIZE = 4 << 20


def test_marker_recovers_byte_exact_and_is_in_no_stored_object(pipeline, tmp_path, minio_store):
    master = pipeline.home / "master.key"
    assert stat.S_IMODE(master.stat().st_mode) == 0o600
    assert pipeline.env["DIALBACK_MASTER_KEY_FILE"] == str(master)
    key = read_credentials(pipeline.credentials).transport_key
    assert key is not None, "the pipeline's tenant must have a transport key"
    pipeline.start()
    disk = tmp_path / "enc.img"
    disk.write_bytes(bytes(SIZE))
    agent = pipeline.start_agent("enc", {"d0": disk})
    agent.wait_shipped()
    marker = os.urandom(64)  # incompressible: in a plaintext object it would appear verbatim
    with connect("127.0.0.1", agent.nbd_port, "d0") as c:
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

    objects = list(minio_store.list(tenant_bucket(pipeline.tenant)))
    assert any(o.key.endswith(".seg") for o in objects), [o.key for o in objects]
    for o in objects:
        raw = minio_store.get(tenant_bucket(pipeline.tenant), o.key)
        assert raw[:4] == b"DBE1", f"{o.key} is not encrypted"
        assert marker not in raw, f"marker found in plaintext in {o.key}"
    logs = pipeline.logs()
    for form in (key.hex(), base64.b64encode(key).decode(), master.read_text().strip()):
        assert form not in logs
