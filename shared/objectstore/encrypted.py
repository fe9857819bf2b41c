"""EncryptedObjectStore: AES-256-GCM at rest, chunked so get_range stays cheap.

Object layout: header ``MAGIC(4) | plaintext_size(8) | nonce_prefix(8)`` then
chunks of ``CHUNK`` plaintext bytes, each ``ciphertext || tag(16)``. Chunk i
uses nonce ``nonce_prefix || i(4)`` and AAD ``bucket | key | i | size`` so a
chunk or object moved to another key, bucket or position fails authentication,
and truncation fails too (size is authenticated in every chunk).
"""

from __future__ import annotations

import secrets
import struct
from typing import Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.crypto.keyring import Keyring
from shared.objectstore.base import ObjectInfo, ObjectNotFound, ObjectStore, PermanentStoreError

MAGIC = b"DBE1"
CHUNK = 64 * 1024
TAG = 16
HEADER = struct.Struct(">4sQ8s")


class IntegrityError(PermanentStoreError):
    """An object failed authentication (tampered, truncated or moved)."""


def plaintext_size(stored_size: int) -> int:
    body = stored_size - HEADER.size
    if body <= 0:
        return 0
    n = -(-body // (CHUNK + TAG))
    return body - n * TAG


class EncryptedObjectStore(ObjectStore):
    def __init__(self, inner: ObjectStore, keyring: Keyring) -> None:
        self.inner = inner
        self.keyring = keyring

    def _aead(self, bucket: str) -> AESGCM:
        return AESGCM(self.keyring.data_key(bucket))

    @staticmethod
    def _aad(bucket: str, key: str, i: int, size: int) -> bytes:
        return b"%s\x00%s\x00" % (bucket.encode(), key.encode()) + struct.pack(">IQ", i, size)

    def ensure_bucket(self, bucket: str) -> None:
        self.inner.ensure_bucket(bucket)

    def bucket_exists(self, bucket: str) -> bool:
        return self.inner.bucket_exists(bucket)

    def put(self, bucket: str, key: str, data: bytes) -> None:
        aead, size, prefix = self._aead(bucket), len(data), secrets.token_bytes(8)
        parts, view = [HEADER.pack(MAGIC, size, prefix)], memoryview(data)
        for i, off in enumerate(range(0, size, CHUNK)):
            nonce = prefix + struct.pack(">I", i)
            # a view, not a copy, of each chunk (cryptography takes any buffer)
            parts.append(aead.encrypt(nonce, view[off:off + CHUNK], self._aad(bucket, key, i, size)))
        self.inner.put(bucket, key, b"".join(parts))

    def _header(self, bucket: str, key: str, raw: bytes) -> tuple[int, bytes]:
        if len(raw) < HEADER.size:
            raise IntegrityError(f"object {bucket}/{key} is truncated (no encryption header); restore it from a replica or re-protect the volume")
        magic, size, prefix = HEADER.unpack_from(raw)
        if magic != MAGIC:
            raise IntegrityError(f"object {bucket}/{key} is not a Dialback encrypted object (bad header)")
        return size, prefix

    def _decrypt_chunks(self, bucket: str, key: str, size: int, prefix: bytes, body: bytes, first: int) -> bytes:
        aead, out = self._aead(bucket), []
        step = CHUNK + TAG
        for j, off in enumerate(range(0, len(body), step)):
            i = first + j
            try:
                out.append(aead.decrypt(prefix + struct.pack(">I", i), body[off:off + step], self._aad(bucket, key, i, size)))
            except InvalidTag:
                raise IntegrityError(
                    f"object {bucket}/{key} chunk {i} failed authentication (tampered, truncated, moved or wrong tenant key)"
                ) from None
        return b"".join(out)

    def get(self, bucket: str, key: str) -> bytes:
        raw = self.inner.get(bucket, key)
        size, prefix = self._header(bucket, key, raw)
        n = -(-size // CHUNK)
        if len(raw) != HEADER.size + size + n * TAG:
            raise IntegrityError(f"object {bucket}/{key} has {len(raw)} stored bytes, expected {HEADER.size + size + n * TAG} (truncated or extended)")
        return self._decrypt_chunks(bucket, key, size, prefix, raw[HEADER.size:], 0)

    def get_range(self, bucket: str, key: str, offset: int, length: int) -> bytes:
        size, prefix = self._header(bucket, key, self.inner.get_range(bucket, key, 0, HEADER.size))
        end = min(size, offset + length)
        if offset >= end:
            return b""
        first, last = offset // CHUNK, (end - 1) // CHUNK
        step = CHUNK + TAG
        body = self.inner.get_range(bucket, key, HEADER.size + first * step, (last - first + 1) * step)
        want = min(step, size - last * CHUNK + TAG) + (last - first) * step
        if len(body) != want:
            raise IntegrityError(f"object {bucket}/{key} is truncated (chunk {last} incomplete)")
        plain = self._decrypt_chunks(bucket, key, size, prefix, body, first)
        start = offset - first * CHUNK
        return plain[start:start + (end - offset)]

    def stat(self, bucket: str, key: str) -> ObjectInfo:
        outer = self.inner.stat(bucket, key)  # the modification time
        size, _ = self._header(bucket, key, self.inner.get_range(bucket, key, 0, HEADER.size))
        return ObjectInfo(key=key, size=size, modified_ns=outer.modified_ns)

    def exists(self, bucket: str, key: str) -> bool:
        # One request (the header), as before stat reported modification times: put_chunk calls this per chunk.
        try:
            self._header(bucket, key, self.inner.get_range(bucket, key, 0, HEADER.size))
        except ObjectNotFound:
            return False
        return True

    def list(self, bucket: str, prefix: str = "", start_after: str = "") -> Iterator[ObjectInfo]:
        for info in self.inner.list(bucket, prefix, start_after):
            yield ObjectInfo(key=info.key, size=plaintext_size(info.size), modified_ns=info.modified_ns)

    def list_prefixes(self, bucket: str, prefix: str = "") -> Iterator[str]:
        return self.inner.list_prefixes(bucket, prefix)  # keys are not encrypted

    def delete(self, bucket: str, key: str) -> None:
        self.inner.delete(bucket, key)
