"""Writes-topic records sealed under the tenant's bus key: bound to tenant, group and range; no mixing."""

from __future__ import annotations

import base64

import pytest

from shared.crypto.bus import SEAL_HEADER, BusSeal, BusSealError
from shared.crypto.keyring import Keyring, bus_entry
from shared.crypto.transport import new_key
from shared.frames import data_record, encode_batch


@pytest.fixture
def ring(tmp_path) -> Keyring:
    return Keyring(new_key(), tmp_path / "keyring.json")


def _batch(first: int, last: int) -> bytes:
    return encode_batch([data_record("disk0", s, s, s * 4096, b"secret-%04d" % s * 400)
                         for s in range(first, last + 1)])


def test_sealed_record_opens_to_the_batch_and_holds_none_of_it(ring):
    plain = _batch(1, 3)
    value, headers = BusSeal(ring, create=True).seal("acme", "g1", 1, 3, plain)
    assert b"secret-0002" in plain and b"secret" not in value
    assert len(value) == len(plain) + 16  # ciphertext + tag only: nonce in a header, no prefix copy
    assert dict(headers)["first_seq"] == b"1" and dict(headers)["last_seq"] == b"3"
    reader = BusSeal(ring)  # consumers find keys, never create them
    assert reader.open("acme", "g1", value, headers) == plain
    assert reader.open("acme", "g1", value, dict(headers)) == plain  # aiokafka/faust give other shapes


def test_a_record_moved_or_altered_does_not_open(ring):
    ring.data_key(bus_entry("globex"))
    bus = BusSeal(ring, create=True)
    value, headers = bus.seal("acme", "g1", 1, 3, _batch(1, 3))
    other_range = [(k, b"2" if k == "first_seq" else v) for k, v in headers]
    flipped = bytearray(value)
    flipped[7] ^= 1
    for tenant, group, v, h in (("globex", "g1", value, headers), ("acme", "g2", value, headers),
                                ("acme", "g1", value, other_range), ("acme", "g1", bytes(flipped), headers)):
        with pytest.raises(BusSealError, match="does not authenticate"):
            bus.open(tenant, group, v, h)


def test_no_mixing_of_plaintext_and_sealed_records(ring):
    plain = _batch(1, 2)
    with pytest.raises(BusSealError, match="is plaintext, but with a master key"):
        BusSeal(ring).open("acme", "g1", plain, [("first_seq", b"1"), ("last_seq", b"2")])
    value, headers = BusSeal(ring, create=True).seal("acme", "g1", 1, 2, plain)
    with pytest.raises(BusSealError, match="no master key"):
        BusSeal(None).open("acme", "g1", value, headers)
    # plaintext mode (no master key anywhere): records pass through unchanged
    v, h = BusSeal(None).seal("acme", "g1", 1, 2, plain)
    assert v is plain and SEAL_HEADER not in dict(h) and BusSeal(None).open("acme", "g1", v, h) is plain


def test_a_consumer_never_creates_a_bus_key_and_errors_hold_no_key(ring, tmp_path):
    value, headers = BusSeal(ring, create=True).seal("acme", "g1", 1, 2, _batch(1, 2))
    key = ring.find(bus_entry("acme"))
    other = Keyring(new_key(), tmp_path / "other.json")  # a retention pointed at another keyring
    with pytest.raises(BusSealError, match="DIALBACK_KEYRING_FILE") as err:
        BusSeal(other).open("acme", "g1", value, headers)
    assert other.find(bus_entry("acme")) is None
    for form in (key.hex(), base64.b64encode(key).decode()):
        assert form not in str(err.value)
    with pytest.raises(BusSealError, match="malformed seal header"):
        BusSeal(ring).open("acme", "g1", value, [*headers[:2], (SEAL_HEADER, b"DBK1")])
