"""Data key rotation and re-keying on the real MinIO, through the CLI an operator runs."""

from __future__ import annotations

import base64
import secrets
import uuid

import pytest
from typer.testing import CliRunner

from shared.crypto.keyring import Keyring, ensure_master_key, load_master_key
from shared.objectstore.encrypted import CHUNK, EncryptedObjectStore
from shared.objectstore.rekey import scan_formats
from shared.tenancy import tenant_bucket
from tests.shared.crypto.legacy_dbe1 import seal_dbe1


@pytest.mark.integration
def test_cli_rotate_data_then_rekey_retire_on_minio(minio_store, minio_settings, tmp_path, monkeypatch):
    from cli.main import app

    master = ensure_master_key(tmp_path)
    for k, v in {**minio_settings, "DIALBACK_MASTER_KEY_FILE": str(master)}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("DIALBACK_KEYRING_FILE", raising=False)
    monkeypatch.delenv("DIALBACK_BUCKET_PREFIX", raising=False)
    tenant = f"rk{uuid.uuid4().hex[:8]}"
    bucket = tenant_bucket(tenant)
    ring = Keyring(load_master_key(master), tmp_path / "keyring.json")
    store = EncryptedObjectStore(minio_store, ring)  # a running service
    store.ensure_bucket(bucket)
    want = {}
    gen1 = ring.data_key(bucket)
    for i in range(2):  # objects the old Dialback wrote (DBE1)
        k, want[k] = f"groups/g/journal/{i:020d}.seg", secrets.token_bytes(2 * CHUNK + i)
        minio_store.put(bucket, k, seal_dbe1(want[k], gen1, bucket, k))
    want["chunks/aa/aa01"] = secrets.token_bytes(CHUNK)
    store.put(bucket, "chunks/aa/aa01", want["chunks/aa/aa01"])

    cli = CliRunner()
    r = cli.invoke(app, ["keys", "rotate-data", "--tenant", tenant])
    assert r.exit_code == 0, r.output
    assert "generation 2" in r.output
    want["groups/g/manifest.json"] = b'{"volumes": {}}'
    store.put(bucket, "groups/g/manifest.json", want["groups/g/manifest.json"])  # the service picked gen 2 up
    assert store.header(bucket, "groups/g/manifest.json").key_id == 2
    assert scan_formats(store, bucket) == {(1, 1): 2, (2, 1): 1, (2, 2): 1}
    assert {k: store.get(bucket, k) for k in want} == want

    listed = cli.invoke(app, ["keys", "data-keys", "--tenant", tenant])
    assert listed.exit_code == 0 and "before rotation existed" in listed.output, listed.output

    r = cli.invoke(app, ["keys", "rekey", "--tenant", tenant, "--retire"])
    assert r.exit_code == 0, r.output
    assert "3 rewritten" in r.output and "retired data key generations [1]" in r.output
    fresh = EncryptedObjectStore(minio_store, Keyring(load_master_key(master), tmp_path / "keyring.json"))
    assert scan_formats(fresh, bucket) == {(2, 2): 4}
    assert {k: fresh.get(bucket, k) for k in want} == want  # byte-identical after the rewrite
    assert fresh.keyring.find(bucket) is None
    for text in (r.output, listed.output):
        assert gen1.hex() not in text and base64.b64encode(gen1).decode() not in text

    missing = cli.invoke(app, ["keys", "rekey", "--tenant", f"nope{uuid.uuid4().hex[:6]}"])
    assert missing.exit_code == 1 and "has no bucket" in missing.output
