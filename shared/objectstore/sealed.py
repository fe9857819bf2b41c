"""The bytes at rest of EncryptedObjectStore: format DBE2 (written) and DBE1 (read only).

DBE2, header 49 bytes, big-endian::

    "DBE2" | version (u8 = 2) | key id (u32: data key generation) | plaintext size (u64) | salt (32 random bytes)

* subkey = HKDF-SHA256(data key of that generation, salt,
  info = "dialback-object-v2" \\0 bucket \\0 key): unique to this object and
  this write (the salt is fresh on every put), so the nonce of chunk i can
  simply be i (12 bytes, big-endian): no (key, nonce) pair ever repeats, at
  any number of objects. (DBE1 used one tenant key with a random 64-bit nonce
  prefix per object: collision odds ~3e-4 at 1e8 objects.)
* chunk i = AES-256-GCM(subkey, nonce i, plaintext[i*CHUNK:(i+1)*CHUNK],
  AAD = the whole header | bucket \\0 key \\0 | i (u32)). Every chunk
  authenticates the format version, key id, size and salt, the bucket and the
  key, so a flipped byte, a truncation, an object moved to another key, bucket
  or tenant, and a header rewritten to claim another version or generation all
  fail. An empty object has one empty chunk (its tag authenticates the header).

DBE1 (before 2026-12), header 20 bytes: ``"DBE1" | size (u64) | nonce prefix (8 B)``;
chunk i = AES-256-GCM(data key generation 1, prefix | i (u32), AAD = bucket \\0 key \\0 | i (u32) | size (u64)).
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.objectstore.base import PermanentStoreError

CHUNK = 64 * 1024
TAG = 16
STEP = CHUNK + TAG  # one stored chunk
V1 = struct.Struct(">4sQ8s")
V2 = struct.Struct(">4sBIQ32s")
MAGIC1, MAGIC2, VERSION = b"DBE1", b"DBE2", 2
HEADER_MAX = V2.size  # read this many bytes to parse either header
INFO = b"dialback-object-v2"


class IntegrityError(PermanentStoreError):
    """An object failed authentication (tampered, truncated or moved)."""


@dataclass(frozen=True)
class Header:
    version: int  # 1 (DBE1) or 2 (DBE2)
    key_id: int  # data key generation; DBE1 objects are all generation 1
    size: int  # plaintext bytes
    nonce_material: bytes  # DBE2: the salt; DBE1: the nonce prefix
    raw: bytes  # the header as stored

    @property
    def chunks(self) -> int:
        n = -(-self.size // CHUNK)
        return max(n, 1) if self.version >= 2 else n

    @property
    def stored_size(self) -> int:
        return len(self.raw) + self.size + self.chunks * TAG


def parse_header(raw: bytes, where: str) -> Header:
    """The header at the start of ``raw`` (at least its first HEADER_MAX bytes, or the whole object)."""
    magic = bytes(raw[:4])
    if magic == MAGIC2 and len(raw) >= V2.size:
        _, version, key_id, size, salt = V2.unpack_from(raw)
        if version != VERSION:
            raise IntegrityError(f"object {where} claims format version {version} in a DBE2 header; this Dialback "
                                 "reads version 2 only (a tampered header, or written by a newer Dialback)")
        return Header(version, key_id, size, salt, bytes(raw[:V2.size]))
    if magic == MAGIC1 and len(raw) >= V1.size:
        _, size, prefix = V1.unpack_from(raw)
        return Header(1, 1, size, prefix, bytes(raw[:V1.size]))
    if magic in (MAGIC1, MAGIC2) or len(raw) < 4:
        raise IntegrityError(f"object {where} is truncated (no complete encryption header); restore it from a "
                             "replica or re-protect the volume")
    raise IntegrityError(f"object {where} is not a Dialback encrypted object (bad header)")


def plaintext_size(stored_size: int) -> int:
    """Plaintext size of a DBE2 object from its stored size (a DBE1 object reads 29 bytes smaller)."""
    body = stored_size - V2.size
    if body <= 0:
        return 0
    n = -(-body // STEP)
    return max(0, body - n * TAG)


class ObjectCipher:
    """The AEAD of one object, its subkey derived once: seal or open its chunks."""

    def __init__(self, header: Header, data_key: bytes, bucket: str, key: str) -> None:
        self.header, self.where = header, f"{bucket}/{key}"
        names = b"%s\x00%s\x00" % (bucket.encode(), key.encode())
        if header.version >= 2:
            hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=header.nonce_material, info=INFO + b"\x00" + names)
            self._aead, self._aad = AESGCM(hkdf.derive(data_key)), header.raw + names
        else:
            self._aead, self._aad = AESGCM(data_key), names

    def _nonce_aad(self, i: int) -> tuple[bytes, bytes]:
        if self.header.version >= 2:
            return i.to_bytes(12, "big"), self._aad + struct.pack(">I", i)
        return self.header.nonce_material + struct.pack(">I", i), self._aad + struct.pack(">IQ", i, self.header.size)

    def seal_chunk(self, i: int, plain) -> bytes:
        nonce, aad = self._nonce_aad(i)
        return self._aead.encrypt(nonce, plain, aad)

    def open_chunks(self, body, first: int) -> bytes:
        """Plaintext of the stored chunks ``body`` (whole chunks), the first being chunk ``first``."""
        out, view = [], memoryview(body)
        for j, off in enumerate(range(0, len(view), STEP)):
            i = first + j
            nonce, aad = self._nonce_aad(i)
            try:
                out.append(self._aead.decrypt(nonce, view[off:off + STEP], aad))
            except InvalidTag:
                raise IntegrityError(
                    f"object {self.where} chunk {i} failed authentication (tampered, truncated, moved, "
                    "header rewritten or wrong tenant key)"
                ) from None
        return b"".join(out)


def seal(data: bytes, data_key: bytes, key_id: int, bucket: str, key: str) -> bytes:
    """``data`` as a DBE2 object for ``bucket``/``key`` under generation ``key_id`` (key ``data_key``)."""
    salt = secrets.token_bytes(32)
    raw = V2.pack(MAGIC2, VERSION, key_id, len(data), salt)
    header = Header(VERSION, key_id, len(data), salt, raw)
    cipher, view = ObjectCipher(header, data_key, bucket, key), memoryview(data)
    # views, not copies, of each chunk (cryptography takes any buffer)
    return b"".join([raw] + [cipher.seal_chunk(i, view[i * CHUNK:(i + 1) * CHUNK]) for i in range(header.chunks)])
