"""Sealing agent → ingest batch bodies with the tenant's transport key (docs/encryption.md).

Sealed body::

    "DBT1" | first_seq (u64 BE) | last_seq (u64 BE) | nonce (12 B) | ciphertext + tag (16 B)

AAD = ``"dialback-transport-v1" \\0 tenant \\0 group \\0 first_seq | last_seq``: a
body replayed to another tenant, group or sequence range does not open.
Errors never carry key bytes.
"""

from __future__ import annotations

import base64
import secrets
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.errors import DialbackError

MAGIC = b"DBT1"
SEALED_CONTENT_TYPE = "application/x-dialback-sealed-batch"
_HEAD = struct.Struct(">4sQQ12s")
OVERHEAD = _HEAD.size + 16  # header + GCM tag
KEY_BYTES = 32


class TransportError(DialbackError):
    """A sealed body that is malformed or does not authenticate."""


def _aad(tenant: str, group: str, first: int, last: int) -> bytes:
    return b"\x00".join((b"dialback-transport-v1", tenant.encode(), group.encode(),
                         struct.pack(">QQ", first, last)))


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def decode_key(text: str) -> bytes:
    """A base64 transport key -> 32 bytes (the message never echoes the text)."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except ValueError:
        raise TransportError("the transport key is not base64; copy it unchanged from the credentials file") from None
    if len(key) != KEY_BYTES:
        raise TransportError(f"the transport key must be {KEY_BYTES} bytes, got {len(key)}; "
                             "copy it unchanged from the credentials file")
    return key


def is_sealed(body: bytes) -> bool:
    return body[:4] == MAGIC


def seal(key: bytes, tenant: str, group: str, first: int, last: int, batch: bytes) -> bytes:
    nonce = secrets.token_bytes(12)
    head = _HEAD.pack(MAGIC, first, last, nonce)
    return head + AESGCM(key).encrypt(nonce, batch, _aad(tenant, group, first, last))


def open_sealed(key: bytes, tenant: str, group: str, body: bytes | bytearray) -> tuple[bytes, int, int]:
    """(batch, first_seq, last_seq) of a sealed body, or TransportError."""
    if len(body) < OVERHEAD or not is_sealed(body):
        raise TransportError(f"sealed batch is malformed: expected {MAGIC.decode()} header and at least "
                             f"{OVERHEAD} bytes, got {len(body)} bytes")
    _, first, last, nonce = _HEAD.unpack_from(body)
    try:
        batch = AESGCM(key).decrypt(nonce, memoryview(body)[_HEAD.size:], _aad(tenant, group, first, last))
    except InvalidTag:
        raise TransportError(
            f"sealed batch {first}-{last} does not authenticate with this tenant's transport key: "
            "the agent uses another key (check its credentials file), the body was altered, or it was "
            "sealed for another tenant, group or sequence range"
        ) from None
    return batch, first, last
