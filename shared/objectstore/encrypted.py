"""EncryptedObjectStore: AES-256-GCM at rest, chunked so get_range stays cheap.

Objects are written in format DBE2 (:mod:`shared.objectstore.sealed`): a
per-object subkey derived from the tenant bucket's newest data key generation
(:mod:`shared.crypto.data_keys`) and a random 256-bit salt in the header.
DBE1 objects (one tenant key, random nonce prefix) stay readable; `dialback
keys rekey` rewrites them (shared.objectstore.rekey). Every read derives the
subkey once per call and keeps it for that call only.
"""

from __future__ import annotations

from typing import Iterator

from shared.crypto.data_keys import DataKeys
from shared.crypto.keyring import Keyring
from shared.objectstore.base import ObjectInfo, ObjectNotFound, ObjectStore
from shared.objectstore.sealed import (
    CHUNK, HEADER_MAX, STEP, TAG, Header, IntegrityError, ObjectCipher, parse_header, plaintext_size, seal,
)

__all__ = ["CHUNK", "EncryptedObjectStore", "IntegrityError", "plaintext_size"]


class EncryptedObjectStore(ObjectStore):
    def __init__(self, inner: ObjectStore, keyring: Keyring) -> None:
        self.inner = inner
        self.keyring = keyring
        self.data_keys = DataKeys(keyring)

    def ensure_bucket(self, bucket: str) -> None:
        self.inner.ensure_bucket(bucket)

    def bucket_exists(self, bucket: str) -> bool:
        return self.inner.bucket_exists(bucket)

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.inner.put(bucket, key, self.seal(bucket, key, data))

    def seal(self, bucket: str, key: str, data: bytes) -> bytes:
        """The stored bytes ``put`` would write: DBE2 under the bucket's newest data key generation."""
        gen, data_key = self.data_keys.current(bucket)
        return seal(data, data_key, gen, bucket, key)

    def header(self, bucket: str, key: str) -> Header:
        """The sealed header of ``bucket``/``key`` (one ranged read): format version, key generation, size."""
        return parse_header(self.inner.get_range(bucket, key, 0, HEADER_MAX), f"{bucket}/{key}")

    def _cipher(self, bucket: str, key: str, header: Header) -> ObjectCipher:
        data_key = self.data_keys.key(bucket, header.key_id)
        if data_key is None:
            raise IntegrityError(
                f"object {bucket}/{key} is sealed under data key generation {header.key_id} of bucket {bucket}, "
                "which this keyring does not hold (retired, or not the keyring it was written with); check "
                "DIALBACK_KEYRING_FILE, or restore keyring.json from a backup"
            )
        return ObjectCipher(header, data_key, bucket, key)

    def get(self, bucket: str, key: str) -> bytes:
        raw = self.inner.get(bucket, key)
        h = parse_header(raw, f"{bucket}/{key}")
        if len(raw) != h.stored_size:
            raise IntegrityError(f"object {bucket}/{key} has {len(raw)} stored bytes, expected {h.stored_size} "
                                 "(truncated or extended)")
        return self._cipher(bucket, key, h).open_chunks(memoryview(raw)[len(h.raw):], 0)

    def get_range(self, bucket: str, key: str, offset: int, length: int) -> bytes:
        h = self.header(bucket, key)
        end = min(h.size, offset + length)
        if offset >= end:
            return b""
        first, last = offset // CHUNK, (end - 1) // CHUNK
        body = self.inner.get_range(bucket, key, len(h.raw) + first * STEP, (last - first + 1) * STEP)
        want = min(STEP, h.size - last * CHUNK + TAG) + (last - first) * STEP
        if len(body) != want:
            raise IntegrityError(f"object {bucket}/{key} is truncated (chunk {last} incomplete)")
        plain = self._cipher(bucket, key, h).open_chunks(body, first)
        start = offset - first * CHUNK
        return plain[start:start + (end - offset)]

    def stat(self, bucket: str, key: str) -> ObjectInfo:
        outer = self.inner.stat(bucket, key)  # the modification time
        return ObjectInfo(key=key, size=self.header(bucket, key).size, modified_ns=outer.modified_ns)

    def exists(self, bucket: str, key: str) -> bool:
        # One request (the header), as before stat reported modification times: put_chunk calls this per chunk.
        try:
            self.header(bucket, key)
        except ObjectNotFound:
            return False
        return True

    def list(self, bucket: str, prefix: str = "", start_after: str = "") -> Iterator[ObjectInfo]:
        # Sizes from stored sizes, no read per object: exact for DBE2, 29 bytes short for a DBE1 object
        # (the formats cannot be told apart by size; `dialback keys rekey` converts DBE1 objects).
        for info in self.inner.list(bucket, prefix, start_after):
            yield ObjectInfo(key=info.key, size=plaintext_size(info.size), modified_ns=info.modified_ns)

    def list_prefixes(self, bucket: str, prefix: str = "") -> Iterator[str]:
        return self.inner.list_prefixes(bucket, prefix)  # keys are not encrypted

    def delete(self, bucket: str, key: str) -> None:
        self.inner.delete(bucket, key)
