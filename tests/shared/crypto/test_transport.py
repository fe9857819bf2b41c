"""shared.crypto.transport: sealed batch bodies bind tenant, group and sequence range."""

from __future__ import annotations

import base64
import struct

import pytest

from shared.crypto.transport import OVERHEAD, TransportError, decode_key, is_sealed, new_key, open_sealed, seal

BATCH = b"v1 batch bytes " * 100


def _leaks(text: str, key: bytes) -> bool:
    return any(form in text for form in (key.hex(), base64.b64encode(key).decode(), repr(key)))


def test_round_trip_and_overhead():
    key = new_key()
    body = seal(key, "acme", "g1", 1, 7, BATCH)
    assert is_sealed(body) and len(body) == len(BATCH) + OVERHEAD
    assert BATCH not in body
    assert open_sealed(key, "acme", "g1", body) == (BATCH, 1, 7)


def test_nonce_is_random_per_batch():
    key = new_key()
    assert seal(key, "acme", "g1", 1, 7, BATCH) != seal(key, "acme", "g1", 1, 7, BATCH)


@pytest.mark.parametrize("tenant,group", [("globex", "g1"), ("acme", "g2")])
def test_replay_to_another_tenant_or_group_fails(tenant, group):
    key = new_key()
    body = seal(key, "acme", "g1", 1, 7, BATCH)
    with pytest.raises(TransportError, match="does not authenticate") as err:
        open_sealed(key, tenant, group, body)
    assert not _leaks(str(err.value), key)


def test_changed_range_in_header_fails():
    key = new_key()
    body = bytearray(seal(key, "acme", "g1", 1, 7, BATCH))
    struct.pack_into(">QQ", body, 4, 8, 14)  # claim another range
    with pytest.raises(TransportError, match="8-14 does not authenticate"):
        open_sealed(key, "acme", "g1", bytes(body))


def test_tampered_body_and_wrong_key_fail():
    key = new_key()
    body = bytearray(seal(key, "acme", "g1", 1, 7, BATCH))
    body[-20] ^= 1
    with pytest.raises(TransportError):
        open_sealed(key, "acme", "g1", bytes(body))
    with pytest.raises(TransportError):
        open_sealed(new_key(), "acme", "g1", seal(key, "acme", "g1", 1, 7, BATCH))


def test_short_or_unsealed_body_is_malformed():
    with pytest.raises(TransportError, match="malformed"):
        open_sealed(new_key(), "acme", "g1", b"DBT1short")
    with pytest.raises(TransportError, match="malformed"):
        open_sealed(new_key(), "acme", "g1", BATCH)


def test_decode_key_never_echoes_the_text():
    key = new_key()
    assert decode_key(base64.b64encode(key).decode()) == key
    bad = base64.b64encode(key[:20]).decode()
    with pytest.raises(TransportError, match="32 bytes") as err:
        decode_key(bad)
    assert bad not in str(err.value)
    with pytest.raises(TransportError, match="not base64"):
        decode_key("***")
