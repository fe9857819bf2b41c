"""Objects in the old at-rest format DBE1, sealed exactly as Dialback did before DBE2 (for compatibility tests).

`test_legacy_writer_matches_main` pins this writer to bytes the old
EncryptedObjectStore produced, so "DBE1 stays readable" is tested on real old objects.
"""

from __future__ import annotations

import secrets
import struct

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CHUNK = 64 * 1024

# Sealed by the old store (commit b9af412, shared/objectstore/encrypted.py) with data key bytes(range(32)),
# nonce prefix 0102030405060708, bucket dialback-acme, key groups/g/manifest.json:
GOLDEN_PLAIN = b"legacy DBE1 object, sealed by main"
GOLDEN = bytes.fromhex(
    "4442453100000000000000220102030405060708e67a49d1ee6ed52fce8de57d1b9ca533c2daca781864151bd53c9d20"
    "c67ea1cf42be82283e11b05cf4db8cdc9e20a248704f")


def seal_dbe1(data: bytes, data_key: bytes, bucket: str, key: str, prefix: bytes | None = None) -> bytes:
    aead, size = AESGCM(data_key), len(data)
    prefix = prefix or secrets.token_bytes(8)
    parts = [struct.pack(">4sQ8s", b"DBE1", size, prefix)]
    for i, off in enumerate(range(0, size, CHUNK)):
        aad = b"%s\x00%s\x00" % (bucket.encode(), key.encode()) + struct.pack(">IQ", i, size)
        parts.append(aead.encrypt(prefix + struct.pack(">I", i), data[off:off + CHUNK], aad))
    return b"".join(parts)
