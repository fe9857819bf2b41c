"""MinIO / S3 adapter on the ``minio`` package, with errors classified."""

from __future__ import annotations

import base64
import io
from typing import Iterator

import crc32c
import urllib3
from minio import Minio
from minio.error import S3Error, ServerError

from shared.config import CommonSettings
from shared.objectstore.base import (
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    PermanentStoreError,
    TransientStoreError,
)

# Objects up to this size go in one PUT (minio-py would use multipart above 5 MiB).
SINGLE_PUT_BYTES = 64 << 20

_NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "NoSuchObject", "ResourceNotFound"}


def _classify(err: Exception, what: str) -> ObjectStoreError:
    if isinstance(err, S3Error):
        if err.code in _NOT_FOUND:
            return ObjectNotFound(f"{what}: {err.code}")
        if err.code in {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"}:
            return TransientStoreError(f"{what}: {err.code}: {err.message}")
        return PermanentStoreError(f"{what}: {err.code}: {err.message}")
    if isinstance(err, ServerError):
        return TransientStoreError(f"{what}: server error {err.status_code}")
    return TransientStoreError(f"{what}: cannot reach object store: {err}")


def _ns(when) -> int:
    """An S3 Last-Modified (aware datetime) as ns since the epoch; 0 (= very old) if the store sent none."""
    return 0 if when is None else int(when.timestamp() * 1e9)


# The checksum every single-request PUT carries; the server recomputes it and refuses a mismatch.
CHECKSUM_HEADER = "x-amz-checksum-crc32c"


def crc32c_header(data: bytes) -> str:
    return base64.b64encode(crc32c.crc32c(data).to_bytes(4, "big")).decode()


class _ChecksummedMinio(Minio):
    """Sends a PUT that carries its own CRC32C unsigned instead of SHA-256-hashed.

    Over plain HTTP minio-py hashes every body with SHA-256 for the SigV4 signature and
    the server hashes it again to verify: two passes over every journal byte. A PUT
    with ``x-amz-checksum-crc32c`` goes as ``UNSIGNED-PAYLOAD`` (what SDKs send over
    TLS): the headers are still signed, and the server still refuses a body whose
    CRC32C differs, at a small fraction of the cost.
    """

    def _build_headers(self, host, headers=None, body=None, creds=None):
        if not body or not creds or CHECKSUM_HEADER not in (headers or {}):
            return super()._build_headers(host, headers, body, creds)
        headers, date = super()._build_headers(host, headers, None, creds)
        headers["Content-Length"] = str(len(body))
        headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
        return headers, date


class MinioObjectStore(ObjectStore):
    def __init__(self, endpoint: str, access_key: str, secret_key: str, secure: bool = False,
                 region: str = "us-east-1") -> None:
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5, read=60),
            maxsize=16,
            retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        self.endpoint = endpoint
        self._c = _ChecksummedMinio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure,
                                    region=region, http_client=http)

    @classmethod
    def from_settings(cls, s: CommonSettings) -> "MinioObjectStore":
        return cls(s.s3_endpoint, s.s3_access_key, s.s3_secret_key.get_secret_value(), s.s3_secure, s.s3_region)

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (S3Error, ServerError, urllib3.exceptions.HTTPError, OSError) as err:
            raise _classify(err, what) from err

    def ensure_bucket(self, bucket: str) -> None:
        if self._call(f"bucket {bucket}", self._c.bucket_exists, bucket):
            return
        try:
            self._c.make_bucket(bucket)
        except S3Error as err:
            if err.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise _classify(err, f"create bucket {bucket}") from err
        except (ServerError, urllib3.exceptions.HTTPError, OSError) as err:
            raise _classify(err, f"create bucket {bucket}") from err

    def bucket_exists(self, bucket: str) -> bool:
        return self._call(f"bucket {bucket}", self._c.bucket_exists, bucket)

    def put(self, bucket: str, key: str, data: bytes) -> None:
        # minio-py splits anything over 5 MiB into a multipart upload (create, parts on a fresh
        # thread pool, complete): for our 8 MiB journal segments that is 4 requests and a pool per
        # object. The bytes are in memory already, so one PUT is cheaper up to SINGLE_PUT_BYTES.
        part_size = SINGLE_PUT_BYTES if len(data) <= SINGLE_PUT_BYTES else 0
        self._call(f"put {bucket}/{key}", self._c.put_object, bucket, key, io.BytesIO(data), len(data),
                   part_size=part_size, metadata={CHECKSUM_HEADER: crc32c_header(data)} if part_size else None)

    def _read(self, what: str, bucket: str, key: str, **kw) -> bytes:
        resp = None
        try:
            resp = self._c.get_object(bucket, key, **kw)
            return resp.read()
        except (S3Error, ServerError, urllib3.exceptions.HTTPError, OSError) as err:
            raise _classify(err, what) from err
        finally:
            if resp is not None:
                resp.close()
                resp.release_conn()

    def get(self, bucket: str, key: str) -> bytes:
        return self._read(f"get {bucket}/{key}", bucket, key)

    def get_range(self, bucket: str, key: str, offset: int, length: int) -> bytes:
        if length <= 0:
            self.stat(bucket, key)
            return b""
        return self._read(f"get {bucket}/{key}", bucket, key, offset=offset, length=length)

    def stat(self, bucket: str, key: str) -> ObjectInfo:
        st = self._call(f"stat {bucket}/{key}", self._c.stat_object, bucket, key)
        return ObjectInfo(key, st.size, _ns(st.last_modified))

    def list(self, bucket: str, prefix: str = "", start_after: str = "") -> Iterator[ObjectInfo]:
        it = self._call(f"list {bucket}/{prefix}", self._c.list_objects, bucket, prefix=prefix or None,
                        recursive=True, start_after=start_after or None)
        try:
            for obj in it:
                yield ObjectInfo(obj.object_name, obj.size, _ns(obj.last_modified))
        except (S3Error, ServerError, urllib3.exceptions.HTTPError, OSError) as err:
            raise _classify(err, f"list {bucket}/{prefix}") from err

    def list_prefixes(self, bucket: str, prefix: str = "") -> Iterator[str]:
        # A delimiter listing: one entry per "directory", not one per object under it.
        it = self._call(f"list {bucket}/{prefix}", self._c.list_objects, bucket, prefix=prefix or None,
                        recursive=False)
        try:
            for obj in it:
                if obj.is_dir:
                    yield obj.object_name
        except (S3Error, ServerError, urllib3.exceptions.HTTPError, OSError) as err:
            raise _classify(err, f"list {bucket}/{prefix}") from err

    def delete(self, bucket: str, key: str) -> None:
        try:
            self._c.remove_object(bucket, key)
        except S3Error as err:
            if err.code in _NOT_FOUND and err.code != "NoSuchBucket":
                return
            raise _classify(err, f"delete {bucket}/{key}") from err
        except (ServerError, urllib3.exceptions.HTTPError, OSError) as err:
            raise _classify(err, f"delete {bucket}/{key}") from err
