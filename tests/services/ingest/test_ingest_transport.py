"""Sealed batches on the in-memory app: open before validation, no downgrade, no key material out."""

from __future__ import annotations

import base64
import logging
import struct

import pytest
from fastapi.testclient import TestClient

from services.ingest.transport import TransportKeys
from shared.crypto.bus import BusSeal, BusSealError
from shared.crypto.keyring import Keyring, bus_entry, transport_entry
from shared.crypto.transport import new_key, seal
from shared.frames import decode_batch
from shared.usage import MemoryEmitter, parse_event

from .ingest_helpers import batch, post, post_sealed, records, register, sealed


@pytest.fixture
def master() -> bytes:
    return new_key()


@pytest.fixture
def ring(tmp_path, master) -> Keyring:
    return Keyring(master, tmp_path / "keyring.json")


@pytest.fixture
def key(ring) -> bytes:
    return ring.data_key(transport_entry("acme"))  # acme has a transport key, globex has none


@pytest.fixture
def sclient(harness, ring, key):
    with TestClient(harness.app(keys=TransportKeys(ring))) as c:
        register(c, harness.tenants, "acme", "g1")
        register(c, harness.tenants, "acme", "g2", volumes=(("disk1", 1 << 30),))
        register(c, harness.tenants, "globex", "g1")
        yield c


def _answers_and_logs_hold_no_key(texts: list[str], key: bytes) -> None:
    forms = (key.hex(), base64.b64encode(key).decode(), repr(key)[2:-1])
    for t in texts:
        for f in forms:
            assert f not in t


def test_sealed_batch_is_opened_validated_and_produced_sealed_under_the_bus_key(harness, sclient, key, ring):
    r = post_sealed(sclient, harness.tenants, "acme", "g1", sealed(key, "acme", "g1", 1, 3))
    assert r.status_code == 200, r.text
    assert r.json() == {"acked_through": 3}
    [msg] = harness.writes.messages("acme")
    plain = batch(1, 3)
    # What rests in Kafka is not the batch: the payload pattern of records() is nowhere in it.
    payload = records(2, 2)[0].data()[:256]
    assert payload in plain and payload not in msg.value and len(msg.value) == len(plain) + 16
    assert ring.find(bus_entry("acme")) not in (None, key)  # its own key, created on first produce
    opened = BusSeal(ring).open("acme", "g1", msg.value, msg.headers)
    assert opened == plain
    assert [rec.sequence for rec in decode_batch(opened)] == [1, 2, 3]
    with pytest.raises(BusSealError, match="does not authenticate"):
        BusSeal(ring).open("acme", "g2", msg.value, msg.headers)  # keyed to another group


def test_refusals_produce_nothing_and_leak_no_key(harness, sclient, key, caplog):
    caplog.set_level(logging.DEBUG)
    t = harness.tenants
    body = sealed(key, "acme", "g1", 1, 3)
    tampered = bytearray(body)
    tampered[-1] ^= 1
    moved = bytearray(body)
    struct.pack_into(">QQ", moved, 4, 2, 4)
    cases = {
        "plaintext from a tenant with a key": post(sclient, t, "acme", "g1", batch(1, 3)),
        "wrong key": post_sealed(sclient, t, "acme", "g1", sealed(new_key(), "acme", "g1", 1, 3)),
        "replayed to another group": post_sealed(sclient, t, "acme", "g2", sealed(key, "acme", "g1", 1, 3,
                                                                               volume="disk1")),
        "replayed to another tenant": post_sealed(sclient, t, "globex", "g1", body),
        "tampered": post_sealed(sclient, t, "acme", "g1", bytes(tampered)),
        "range changed in the header": post_sealed(sclient, t, "acme", "g1", bytes(moved)),
        "envelope range differs from the batch": post_sealed(
            sclient, t, "acme", "g1", seal(key, "acme", "g1", 1, 2, batch(1, 3))),
        "garbage": post_sealed(sclient, t, "acme", "g1", b"DBT1" + b"\0" * 10),
    }
    for name, r in cases.items():
        assert r.status_code == 400, (name, r.status_code, r.text)
    details = {n: r.json()["detail"] for n, r in cases.items()}
    assert "must be sealed" in details["plaintext from a tenant with a key"]
    assert "does not authenticate" in details["wrong key"]
    assert "no transport key" in details["replayed to another tenant"]
    assert "holds 1-3" in details["envelope range differs from the batch"]
    assert harness.writes.messages("acme") == [] and harness.writes.messages("globex") == []
    _answers_and_logs_hold_no_key([r.text for r in cases.values()] + [caplog.text], key)
    # and the real thing still goes through afterwards
    assert post_sealed(sclient, t, "acme", "g1", body).status_code == 200


def test_tenant_without_key_still_ships_plaintext(harness, sclient):
    r = post(sclient, harness.tenants, "globex", "g1", batch(1, 2))
    assert r.status_code == 200 and r.json() == {"acked_through": 2}


def test_key_added_by_another_process_is_required_at_once(harness, sclient, master, tmp_path):
    # `dialback tenant create` in another process adds a transport key to the keyring file
    gkey = Keyring(master, tmp_path / "keyring.json").data_key(transport_entry("globex"))
    assert post(sclient, harness.tenants, "globex", "g1", batch(1, 2)).status_code == 400
    assert post_sealed(sclient, harness.tenants, "globex", "g1", sealed(gkey, "globex", "g1", 1, 2)).status_code == 200


def test_usage_events_once_per_newly_acknowledged_range(harness):
    from services.ingest.usage import IngestUsage, event_id

    em = MemoryEmitter("/dialback/ingest")
    t = harness.tenants
    with TestClient(harness.app(usage=IngestUsage(em))) as c:
        register(c, t, "acme", "g1")
        for first, last in ((1, 3), (4, 6), (1, 3), (5, 9), (7, 9)):  # a duplicate and overlaps
            assert post(c, t, "acme", "g1", batch(first, last, size=1024)).status_code == 200
    assert [(e.meter.value, e.quantity, e.subject) for e in em.events] == [
        ("ingest.bytes", 3 * 1024, "tenants/acme/groups/g1"),
        ("ingest.bytes", 3 * 1024, "tenants/acme/groups/g1"),
        ("ingest.bytes", 3 * 1024, "tenants/acme/groups/g1"),
    ]
    assert [e.id for e in em.events] == [event_id("acme", "g1", a, b) for a, b in ((1, 3), (4, 6), (7, 9))]
    assert event_id("acme", "g1", 1, 3) == event_id("acme", "g1", 1, 3) != event_id("globex", "g1", 1, 3)
    for e in em.events:
        assert parse_event(e.to_json()).id == e.id


def test_wrong_master_key_is_a_500_for_the_operator(harness, key, tmp_path):
    wrong = Keyring(new_key(), tmp_path / "keyring.json")  # same file, another master key
    with TestClient(harness.app(keys=TransportKeys(wrong))) as c:
        register(c, harness.tenants, "acme", "g1")
        r = post_sealed(c, harness.tenants, "acme", "g1", sealed(key, "acme", "g1", 1, 2))
    assert r.status_code == 500 and "DIALBACK_MASTER_KEY_FILE" in r.json()["detail"]
    assert harness.writes.messages("acme") == []
    _answers_and_logs_hold_no_key([r.text], key)


def test_a_bus_key_that_cannot_be_made_is_a_500_and_nothing_is_produced(harness, key, tmp_path):
    # globex has no transport key, so its plaintext body opens; sealing it for Kafka needs a bus key,
    # which a process holding another master key than the keyring file's must not create.
    wrong = Keyring(new_key(), tmp_path / "keyring.json")
    with TestClient(harness.app(keys=TransportKeys(wrong))) as c:
        register(c, harness.tenants, "globex", "g1")
        r = post(c, harness.tenants, "globex", "g1", batch(1, 2))
    assert r.status_code == 500, r.text
    assert "cannot seal the batch for Kafka" in r.json()["detail"] and "DIALBACK_MASTER_KEY_FILE" in r.json()["detail"]
    assert harness.writes.messages("globex") == []
    _answers_and_logs_hold_no_key([r.text], key)
