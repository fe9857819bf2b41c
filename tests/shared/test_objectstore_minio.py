"""The MinIO adapter's PUTs: unsigned payload, CRC32C checked by the server (real MinIO)."""

from __future__ import annotations

import io
import os
import uuid

import pytest
from minio.error import S3Error

from shared.objectstore.minio import CHECKSUM_HEADER, crc32c_header

pytestmark = pytest.mark.integration


@pytest.fixture
def bucket(minio_store) -> str:
    name = f"put-{uuid.uuid4().hex[:12]}"
    minio_store.ensure_bucket(name)
    return name


def _headers_sent(minio_store, monkeypatch) -> list[dict]:
    sent: list[dict] = []
    real = minio_store._c._url_open

    def spy(method, region, bucket_name=None, object_name=None, body=None, headers=None, **kw):
        out = real(method, region, bucket_name=bucket_name, object_name=object_name, body=body,
                   headers=headers, **kw)
        if method == "PUT" and object_name:
            sent.append(dict(headers or {}))
        return out

    monkeypatch.setattr(minio_store._c, "_url_open", spy)
    return sent


def test_put_carries_crc32c_and_goes_unsigned(minio_store, bucket, monkeypatch):
    data = os.urandom(3 << 20)
    sent = _headers_sent(minio_store, monkeypatch)
    minio_store.put(bucket, "seg", data)
    assert minio_store.get(bucket, "seg") == data
    assert sent and sent[0][CHECKSUM_HEADER] == crc32c_header(data)


def test_server_refuses_a_body_that_does_not_match_its_crc32c(minio_store, bucket):
    data = os.urandom(1 << 20)
    wrong = crc32c_header(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(S3Error) as err:
        minio_store._c.put_object(bucket, "torn", io.BytesIO(data), len(data), part_size=64 << 20,
                                  metadata={CHECKSUM_HEADER: wrong})
    assert "Checksum" in err.value.code
    assert not minio_store.exists(bucket, "torn")  # nothing stored


def test_signature_still_covers_the_request(minio_store, bucket):
    """Unsigned payload, signed headers: a wrong secret is still refused."""
    from shared.objectstore.minio import MinioObjectStore

    c = minio_store._c
    forged = MinioObjectStore(minio_store.endpoint, c._provider.retrieve().access_key, "not-the-secret")
    with pytest.raises(Exception, match="SignatureDoesNotMatch"):
        forged.put(bucket, "forged", b"x" * 1024)
    assert not minio_store.exists(bucket, "forged")


def test_empty_object_still_works(minio_store, bucket):
    minio_store.put(bucket, "empty", b"")
    assert minio_store.get(bucket, "empty") == b""
