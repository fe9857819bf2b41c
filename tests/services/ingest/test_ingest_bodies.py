"""Multi-batch bodies (shared.bodies) on the in-memory app: one message per batch, one control event per body."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from services.ingest.transport import TransportKeys
from shared.bodies import (BATCHES_CONTENT_TYPE, MAX_BATCHES_PER_BODY, SEALED_BATCHES_CONTENT_TYPE, encode_body,
                           max_body_bytes)
from shared.crypto.bus import BusSeal
from shared.crypto.keyring import Keyring, transport_entry
from shared.crypto.transport import new_key, seal
from shared.frames import decode_batch
from shared.tenancy import control_topic
from shared.usage import MemoryEmitter

from .ingest_helpers import batch, post, register


def post_body(client, tenants, body: bytes, group: str = "g1", ctype: str = BATCHES_CONTENT_TYPE):
    return client.post(f"/v1/groups/{group}/batches", content=body,
                       headers=tenants.headers("acme", **{"Content-Type": ctype}))


def body(*ranges: tuple[int, int]) -> bytes:
    return encode_body([batch(a, b) for a, b in ranges])


def acked_events(harness) -> list[dict]:
    events = [json.loads(m.value) for m in harness.broker.topics.get(control_topic("acme"), [])]
    return [e for e in events if e["type"] == "BatchAcked"]


def seqs(harness, ring: Keyring | None = None) -> list[list[int]]:
    """Sequences of each record in the writes topic (opened with the bus key when ``ring``)."""
    bus = BusSeal(ring)
    return [[r.sequence for r in decode_batch(bus.open("acme", "g1", m.value, m.headers))]
            for m in harness.writes.messages("acme")]


def test_each_batch_is_one_message_and_the_body_one_control_event(client, harness, tenants):
    register(client, tenants, "acme", "g1")
    r = post_body(client, tenants, body((1, 3), (4, 4), (5, 9)))
    assert r.status_code == 200 and r.json() == {"acked_through": 9}
    assert [m.value for m in harness.writes.messages("acme")] == [batch(1, 3), batch(4, 4), batch(5, 9)]
    assert [(m.headers[0][1], m.headers[1][1]) for m in harness.writes.messages("acme")] == [
        (b"1", b"3"), (b"4", b"4"), (b"5", b"9")]
    assert [e["acked_through"] for e in acked_events(harness)] == [9]
    # single-batch bodies still work and continue the same sequence
    assert post(client, tenants, "acme", "g1", batch(10, 11)).json() == {"acked_through": 11}


def test_resent_body_produces_nothing_and_overlap_only_the_new_suffix(client, harness, tenants):
    register(client, tenants, "acme", "g1")
    assert post_body(client, tenants, body((1, 3), (4, 6))).json() == {"acked_through": 6}
    again = post_body(client, tenants, body((1, 3), (4, 6)))
    assert again.status_code == 200 and again.json() == {"acked_through": 6}
    assert len(harness.writes.messages("acme")) == 2 and len(acked_events(harness)) == 1
    # (1-3) already held, (4-8) overlaps the acked 6: only 7-8 (re-encoded) and 9 are new
    r = post_body(client, tenants, body((1, 3), (4, 8), (9, 9)))
    assert r.json() == {"acked_through": 9}
    assert seqs(harness)[2:] == [[7, 8], [9]]
    assert [e["acked_through"] for e in acked_events(harness)] == [6, 9]


def test_refusals_produce_nothing(client, harness, tenants):
    register(client, tenants, "acme", "g1")
    cases = {
        "gap at the start": (body((2, 3)), 409),
        "gap between batches": (body((1, 3), (5, 6)), 400),
        "going backwards between batches": (body((1, 3), (2, 6)), 400),
        "truncated framing": (body((1, 3))[:-1], 400),
        "not framed": (batch(1, 3), 400),
        "empty": (b"", 400),
        "too many batches": (encode_body([batch(1, 1)]) * (MAX_BATCHES_PER_BODY + 1), 400),
        "corrupt second batch": (body((1, 3)) + body((4, 5))[:-3] + b"xyz", 400),
    }
    for name, (b, status) in cases.items():
        r = post_body(client, tenants, b)
        assert r.status_code == status, (name, r.text)
        assert r.json()["detail"], name
    r = post_body(client, tenants, body((2, 3)))
    assert r.json()["expected"] == 1
    too_big = post_body(client, tenants, b"\0" * (max_body_bytes(False) + 1))
    assert too_big.status_code == 413
    assert harness.writes.messages("acme") == [] and acked_events(harness) == []


def test_a_body_is_all_or_nothing_when_kafka_fails(client, harness, tenants):
    register(client, tenants, "acme", "g1")
    harness.broker.down()
    assert post_body(client, tenants, body((1, 3), (4, 6))).status_code == 503
    harness.broker.up()
    assert acked_events(harness) == []
    assert post_body(client, tenants, body((1, 3), (4, 6))).json() == {"acked_through": 6}
    assert seqs(harness) == [[1, 2, 3], [4, 5, 6]]


def test_sealed_body_binds_the_whole_range(harness, tmp_path):
    ring = Keyring(new_key(), tmp_path / "keyring.json")
    key = ring.data_key(transport_entry("acme"))
    t = harness.tenants
    with TestClient(harness.app(keys=TransportKeys(ring))) as c:
        register(c, t, "acme", "g1")
        plain = body((1, 3), (4, 6))
        assert post_body(c, t, plain).status_code == 400  # plaintext from a keyed tenant
        wrong_range = seal(key, "acme", "g1", 1, 3, plain)
        assert post_body(c, t, wrong_range, ctype=SEALED_BATCHES_CONTENT_TYPE).status_code == 400
        assert harness.writes.messages("acme") == []
        r = post_body(c, t, seal(key, "acme", "g1", 1, 6, plain), ctype=SEALED_BATCHES_CONTENT_TYPE)
        assert r.status_code == 200 and r.json() == {"acked_through": 6}
    assert seqs(harness, ring) == [[1, 2, 3], [4, 5, 6]]


def test_one_usage_event_per_body(harness):
    from services.ingest.usage import IngestUsage, event_id

    em = MemoryEmitter("/dialback/ingest")
    t = harness.tenants
    with TestClient(harness.app(usage=IngestUsage(em))) as c:
        register(c, t, "acme", "g1")
        assert post_body(c, t, encode_body([batch(1, 2, size=1024), batch(3, 5, size=1024)])).status_code == 200
        assert post_body(c, t, encode_body([batch(1, 2, size=1024), batch(3, 5, size=1024)])).status_code == 200
    assert [(e.quantity, e.id) for e in em.events] == [(5 * 1024, event_id("acme", "g1", 1, 5))]


@pytest.mark.parametrize("n", [1, MAX_BATCHES_PER_BODY])
def test_body_sizes_at_the_limits(client, harness, tenants, n):
    register(client, tenants, "acme", "g1")
    r = post_body(client, tenants, body(*[(i, i) for i in range(1, n + 1)]))
    assert r.json() == {"acked_through": n} and len(harness.writes.messages("acme")) == n
