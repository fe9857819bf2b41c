import secrets
import uuid

import pytest

from shared.crypto.keyring import Keyring
from shared.objectstore.encrypted import EncryptedObjectStore, IntegrityError

MARKER = b"DIALBACK-MINIO-MARKER-91c2"


@pytest.mark.integration
def test_real_minio_holds_no_plaintext_and_cross_tenant_fails(minio_store, tmp_path):
    s = EncryptedObjectStore(minio_store, Keyring(secrets.token_bytes(32), tmp_path / "keyring.json"))
    a, b = f"ta-{uuid.uuid4().hex[:8]}", f"tb-{uuid.uuid4().hex[:8]}"
    for bucket in (a, b):
        s.ensure_bucket(bucket)
    data = MARKER * 5000
    s.put(b, "groups/g/segments/0001", data)
    assert s.get(b, "groups/g/segments/0001") == data
    raw = minio_store.get(b, "groups/g/segments/0001")
    assert MARKER not in raw
    minio_store.put(a, "groups/g/segments/0001", raw)  # B's object moved into A's bucket
    with pytest.raises(IntegrityError):
        s.get(a, "groups/g/segments/0001")
