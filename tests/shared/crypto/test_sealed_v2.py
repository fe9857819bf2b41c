"""At-rest format DBE2: per-object subkeys, header authenticated, DBE1 objects still readable."""

from __future__ import annotations

import secrets
import struct

import pytest

from shared.crypto.keyring import Keyring
from shared.objectstore.encrypted import CHUNK, EncryptedObjectStore, IntegrityError
from shared.objectstore.memory import MemoryObjectStore
from shared.objectstore.sealed import HEADER_MAX, INFO, V2, parse_header, plaintext_size
from tests.shared.crypto.legacy_dbe1 import GOLDEN, GOLDEN_PLAIN, seal_dbe1

B = "dialback-acme"


@pytest.fixture
def env(tmp_path):
    inner = MemoryObjectStore()
    s = EncryptedObjectStore(inner, Keyring(secrets.token_bytes(32), tmp_path / "keyring.json"))
    for b in (B, "dialback-globex"):
        s.ensure_bucket(b)
    return inner, s


def test_header_names_format_generation_size_and_a_256_bit_salt(env):
    inner, s = env
    s.put(B, "k", b"x" * 1000)
    raw = inner.get(B, "k")
    magic, version, key_id, size, salt = V2.unpack_from(raw)
    assert (magic, version, key_id, size) == (b"DBE2", 2, 1, 1000) and len(salt) == 32
    s.put(B, "k", b"x" * 1000)
    assert V2.unpack_from(inner.get(B, "k"))[4] != salt  # fresh per write, not per key


def _subkey_and_nonces(raw: bytes, data_key: bytes, bucket: str, key: str) -> set[tuple[bytes, bytes]]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    h = parse_header(raw, key)
    sub = HKDF(hashes.SHA256(), 32, h.nonce_material, INFO + b"\x00%s\x00%s\x00" % (bucket.encode(), key.encode())
               ).derive(data_key)
    return {(sub, i.to_bytes(12, "big")) for i in range(h.chunks)}


def test_no_two_objects_share_a_key_and_nonce(env):
    # DBE1 sealed every object of a tenant under one key with a random 64-bit nonce prefix.
    inner, s = env
    data_key = s.keyring.data_key(B)  # generation 1
    pairs: set = set()
    n = 0
    for i in range(200):
        for k in (f"groups/g/journal/{i:020d}.seg", "groups/g/manifest.json"):  # new keys and one rewritten key
            s.put(B, k, secrets.token_bytes(CHUNK * 2 + 1))
            got = _subkey_and_nonces(inner.get(B, k), data_key, B, k)
            n += len(got)
            pairs |= got
    assert len(pairs) == n == 400 * 3
    # and the derived subkey really is what seals the chunks (the check above is about the real keys)
    raw = inner.get(B, "groups/g/manifest.json")
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    sub, nonce = sorted(_subkey_and_nonces(raw, data_key, B, "groups/g/manifest.json"), key=lambda p: p[1])[0]
    aad = raw[:V2.size] + b"%s\x00groups/g/manifest.json\x00" % B.encode() + struct.pack(">I", 0)
    first_chunk = AESGCM(sub).decrypt(nonce, raw[V2.size:V2.size + CHUNK + 16], aad)
    assert first_chunk == s.get(B, "groups/g/manifest.json")[:CHUNK]


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17])
def test_roundtrip_ranges_and_sizes(env, size):
    inner, s = env
    data = secrets.token_bytes(size)
    s.put(B, "k", data)
    assert s.get(B, "k") == data and s.stat(B, "k").size == size
    assert [i.size for i in s.list(B)] == [size] and plaintext_size(len(inner.get(B, "k"))) == size
    for off, n in [(0, 10), (CHUNK - 5, 10), (size - 3, 100), (size, 5), (CHUNK + 1, 2 * CHUNK)]:
        assert s.get_range(B, "k", max(off, 0), n) == data[max(off, 0):max(off, 0) + n]


def _tampered(raw: bytes, how: str) -> bytes:
    b = bytearray(raw)
    if how == "chunk byte":
        b[V2.size + CHUNK + 20] ^= 1
    elif how == "last tag":
        b[-1] ^= 1
    elif how == "salt":
        b[20] ^= 1
    elif how == "key id":
        b[5:9] = (2).to_bytes(4, "big")
    elif how == "size":
        b[9:17] = (int.from_bytes(b[9:17], "big") - 1).to_bytes(8, "big")
    elif how == "truncated":
        del b[-(CHUNK // 2):]
    elif how == "last chunk dropped":
        del b[V2.size + 2 * (CHUNK + 16):]
    elif how == "extended":
        b += b"\x00" * 16
    elif how == "chunks swapped":
        s = V2.size
        b[s:s + 2 * (CHUNK + 16)] = b[s + CHUNK + 16:s + 2 * (CHUNK + 16)] + b[s:s + CHUNK + 16]
    return bytes(b)


@pytest.mark.parametrize("how", ["chunk byte", "last tag", "salt", "key id", "size", "truncated",
                                 "last chunk dropped", "extended", "chunks swapped"])
def test_tamper_and_truncation_fail(env, how):
    inner, s = env
    s.data_keys.rotate(B)  # so "key id" names a generation the keyring holds: the tag must catch it
    s.data_keys.rotate(B)
    data = secrets.token_bytes(2 * CHUNK + 100)
    s.put(B, "k", data)
    inner.put(B, "k", _tampered(inner.get(B, "k"), how))
    with pytest.raises(IntegrityError):
        s.get(B, "k")
    with pytest.raises(IntegrityError):
        s.get_range(B, "k", 0, len(data))


def test_empty_object_header_is_authenticated(env):
    inner, s = env
    s.put(B, "e", b"")
    raw = bytearray(inner.get(B, "e"))
    assert len(raw) == V2.size + 16  # one empty chunk: its tag covers the header
    raw[30] ^= 1  # the salt
    inner.put(B, "e", bytes(raw))
    with pytest.raises(IntegrityError):
        s.get(B, "e")


def test_moved_object_fails(env):
    inner, s = env
    s.put("dialback-globex", "groups/g/own", b"globex has its own key")
    s.put(B, "groups/g/a", b"secret" * 100)
    raw = inner.get(B, "groups/g/a")
    inner.put(B, "groups/g/b", raw)
    inner.put("dialback-globex", "groups/g/a", raw)
    for bucket, key in ((B, "groups/g/b"), ("dialback-globex", "groups/g/a")):
        with pytest.raises(IntegrityError, match="failed authentication"):
            s.get(bucket, key)


def test_version_downgrade_or_upgrade_of_the_header_fails(env):
    inner, s = env
    data = secrets.token_bytes(CHUNK + 5)
    s.put(B, "k", data)
    raw = inner.get(B, "k")
    _, _, _, size, salt = V2.unpack_from(raw)
    for version in (1, 3, 0):  # the version byte rewritten: refused by the parser, and by every chunk's tag
        inner.put(B, "k", raw[:4] + bytes([version]) + raw[5:])
        with pytest.raises(IntegrityError, match="version"):
            s.get(B, "k")
    # rewritten as a DBE1 object (the old format, without the per-object subkey), body kept
    as_v1 = struct.pack(">4sQ8s", b"DBE1", size, salt[:8]) + raw[V2.size:]
    inner.put(B, "k", as_v1)
    for read in (lambda: s.get(B, "k"), lambda: s.get_range(B, "k", 0, 10), lambda: s.get_range(B, "k", CHUNK, 5)):
        with pytest.raises(IntegrityError):
            read()
    with pytest.raises(IntegrityError, match="failed authentication"):  # the chunks do not open as DBE1 chunks
        s.get_range(B, "k", 0, 10)


def test_legacy_writer_matches_main():
    assert seal_dbe1(GOLDEN_PLAIN, bytes(range(32)), B, "groups/g/manifest.json", bytes(range(1, 9))) == GOLDEN


def test_dbe1_objects_stay_readable_and_authenticated(env):
    inner, s = env
    key1 = s.keyring.data_key(B)  # generation 1: the key DBE1 objects were sealed under
    data = secrets.token_bytes(3 * CHUNK + 11)
    inner.put(B, "old/seg", seal_dbe1(data, key1, B, "old/seg"))
    inner.put(B, "old/empty", seal_dbe1(b"", key1, B, "old/empty"))
    assert s.get(B, "old/seg") == data and s.get(B, "old/empty") == b""
    assert s.stat(B, "old/seg").size == len(data) and s.exists(B, "old/seg")
    for off, n in [(0, 7), (CHUNK - 1, 3), (2 * CHUNK, CHUNK + 11), (len(data) - 1, 9)]:
        assert s.get_range(B, "old/seg", off, n) == data[off:off + n]
    s.data_keys.rotate(B)  # still readable after a rotation
    assert s.get(B, "old/seg") == data
    raw = bytearray(inner.get(B, "old/seg"))
    raw[HEADER_MAX + 100] ^= 1
    inner.put(B, "old/seg", bytes(raw))
    with pytest.raises(IntegrityError, match="failed authentication"):
        s.get(B, "old/seg")


def test_read_of_a_generation_the_keyring_lacks_says_so(env):
    inner, s = env
    s.put(B, "k", b"data")
    raw = bytearray(inner.get(B, "k"))
    raw[5:9] = (7).to_bytes(4, "big")
    inner.put(B, "k", bytes(raw))
    with pytest.raises(IntegrityError, match="generation 7 .* does not hold"):
        s.get(B, "k")
