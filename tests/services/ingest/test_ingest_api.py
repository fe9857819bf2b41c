"""Ingest HTTP API on in-memory logs: every bad input is a clear 4xx and produces nothing."""

from __future__ import annotations

import json

from .ingest_helpers import BATCH, VOLUME_SIZE, batch, bookmark, post, records, register

from shared.frames import MAX_BATCH_BYTES, data_record, decode_batch, encode_batch
from shared.tenancy import control_topic, writes_topic


def produced(harness, tenant="acme"):
    return harness.broker.topics.get(writes_topic(tenant), [])


def control_events(harness, tenant="acme"):
    return [json.loads(m.value) for m in harness.broker.topics.get(control_topic(tenant), [])]


# -- registration -------------------------------------------------------------

def test_register_creates_topics_and_event_and_is_idempotent(client, harness, tenants):
    r1 = register(client, tenants, "acme", "g1")
    assert r1.json() == {"group": "g1", "volumes": [{"volume": "disk0", "size": VOLUME_SIZE}], "acked_through": 0}
    assert writes_topic("acme") in harness.broker.topics
    register(client, tenants, "acme", "g1")
    events = control_events(harness)
    assert [e["type"] for e in events] == ["GroupRegistered"]
    assert events[0]["group"] == "g1" and events[0]["volumes"] == [{"volume": "disk0", "size": VOLUME_SIZE}]
    got = client.get("/v1/groups/g1", headers=tenants.headers("acme"))
    assert got.status_code == 200 and got.json() == r1.json()


def test_register_conflicts(client, tenants):
    register(client, tenants, "acme", "g1", volumes=(("disk0", 4096), ("disk1", 8192)))
    other = client.put("/v1/groups/g2", headers=tenants.headers("acme"),
                       json={"volumes": [{"volume": "disk1", "size": 8192}]})
    assert other.status_code == 409 and "disk1" in other.json()["detail"]
    changed = client.put("/v1/groups/g1", headers=tenants.headers("acme"),
                         json={"volumes": [{"volume": "disk0", "size": 4096}]})
    assert changed.status_code == 409
    # Another tenant may use the same names: tenants never see each other.
    register(client, tenants, "globex", "g1", volumes=(("disk1", 8192),))


def test_register_rejects_bad_bodies(client, harness, tenants):
    for body in ({}, {"volumes": []}, {"volumes": [{"volume": "bad/name", "size": 1}]},
                 {"volumes": [{"volume": "d", "size": 0}]}, {"volumes": [{"volume": "d"}]},
                 {"volumes": [{"volume": "d", "size": 1}, {"volume": "d", "size": 1}]}):
        r = client.put("/v1/groups/g1", headers=tenants.headers("acme"), json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["detail"]
    assert control_events(harness) == []


# -- happy path ----------------------------------------------------------------

def test_batches_are_produced_as_sent_and_acked(client, harness, tenants):
    register(client, tenants, "acme", "g1")
    b1, b2 = batch(1, 10), batch(11, 20)
    assert post(client, tenants, "acme", "g1", b1).json() == {"acked_through": 10}
    assert post(client, tenants, "acme", "g1", b2).json() == {"acked_through": 20}
    msgs = produced(harness)
    assert [m.value for m in msgs] == [b1, b2]
    assert msgs[0].key == b"g1"
    assert dict(msgs[1].headers) == {"first_seq": b"11", "last_seq": b"20"}
    acks = [e for e in control_events(harness) if e["type"] == "BatchAcked"]
    assert [e["acked_through"] for e in acks] == [10, 20]
    assert client.get("/v1/groups/g1", headers=tenants.headers("acme")).json()["acked_through"] == 20


def test_duplicate_batch_is_acked_without_producing(client, harness, tenants):
    register(client, tenants, "acme", "g1")
    post(client, tenants, "acme", "g1", batch(1, 10))
    post(client, tenants, "acme", "g1", batch(11, 12))
    r = post(client, tenants, "acme", "g1", batch(1, 10))
    assert r.status_code == 200 and r.json() == {"acked_through": 12}
    assert len(produced(harness)) == 2


def test_overlapping_batch_produces_only_the_new_suffix(client, harness, tenants):
    register(client, tenants, "acme", "g1")
    post(client, tenants, "acme", "g1", batch(1, 10))
    r = post(client, tenants, "acme", "g1", batch(6, 15))
    assert r.json() == {"acked_through": 15}
    last = produced(harness)[-1]
    recs = decode_batch(last.value)
    assert [x.sequence for x in recs] == list(range(11, 16))
    assert [x.data() for x in recs] == [x.data() for x in records(11, 15)]
    assert dict(last.headers) == {"first_seq": b"11", "last_seq": b"15"}


def test_bookmarks_and_several_volumes(client, harness, tenants):
    register(client, tenants, "acme", "g1", volumes=(("disk0", VOLUME_SIZE), ("disk1", VOLUME_SIZE)))
    recs = records(1, 2) + [bookmark("disk0", 3, "before-upgrade")] + records(4, 5, volume="disk1")
    r = post(client, tenants, "acme", "g1", encode_batch(recs))
    assert r.json() == {"acked_through": 5}
    assert produced(harness)[0].value == encode_batch(recs)


# -- refusals: each a clear 4xx, nothing produced ---------------------------------

def assert_refused(r, status, harness, before):
    assert r.status_code == status, r.text
    assert r.json()["detail"], "error must say what is wrong"
    assert len(produced(harness)) == before
    return r.json()


def test_corrupt_crc(client, harness, tenants):
    register(client, tenants, "acme", "g1")
    body = bytearray(batch(1, 3))
    body[-100] ^= 0xFF  # inside the last record's payload
    body = bytes(body)
    detail = assert_refused(post(client, tenants, "acme", "g1", body), 400, harness, 0)["detail"]
    assert "CRC32C" in detail


def test_truncated_frame(client, harness, tenants):
    register(client, tenants, "acme", "g1")
    body = batch(1, 3)
    for cut in (5, 30, len(body) - 1):
        assert_refused(post(client, tenants, "acme", "g1", body[:cut]), 400, harness, 0)


def test_empty_and_garbage_bodies(client, harness, tenants):
    register(client, tenants, "acme", "g1")
    assert_refused(post(client, tenants, "acme", "g1", b""), 400, harness, 0)
    assert_refused(post(client, tenants, "acme", "g1", encode_batch([])), 400, harness, 0)
    assert_refused(post(client, tenants, "acme", "g1", b"\x00" * 64), 400, harness, 0)


def test_missing_and_wrong_tokens(client, harness, tenants):
    register(client, tenants, "acme", "g1")
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {tenants.tokens['acme']}"}):
        r = client.post("/v1/groups/g1/batches", content=batch(1, 1), headers=headers)
        assert_refused(r, 401, harness, 0)
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_other_tenants_group_is_indistinguishable_from_unknown(client, harness, tenants):
    register(client, tenants, "acme", "g1")
    foreign = post(client, tenants, "globex", "g1", batch(1, 1))
    unknown = post(client, tenants, "globex", "nope", batch(1, 1))
    assert_refused(foreign, 404, harness, 0)
    assert_refused(unknown, 404, harness, 0)
    assert foreign.json()["detail"].replace("g1", "X") == unknown.json()["detail"].replace("nope", "X")
    assert client.get("/v1/groups/g1", headers=tenants.headers("globex")).status_code == 404
    assert writes_topic("globex") not in harness.broker.topics or produced(harness, "globex") == []


def test_gap_is_409_with_expected(client, harness, tenants):
    register(client, tenants, "acme", "g1")
    post(client, tenants, "acme", "g1", batch(1, 10))
    r = post(client, tenants, "acme", "g1", batch(12, 20))
    body = assert_refused(r, 409, harness, 1)
    assert body["expected"] == 11
    first = post(client, tenants, "acme", "g1", batch(2, 3))
    assert first.status_code == 200 and first.json() == {"acked_through": 10}
    assert_refused(post(client, tenants, "acme", "g2", batch(1, 1)), 404, harness, 1)


def test_first_batch_must_start_at_one(client, harness, tenants):
    register(client, tenants, "acme", "g1")
    assert assert_refused(post(client, tenants, "acme", "g1", batch(2, 3)), 409, harness, 0)["expected"] == 1


def test_unordered_or_gappy_batch(client, harness, tenants):
    register(client, tenants, "acme", "g1")
    recs = records(1, 5)
    for bad in ([recs[0], recs[2]], [recs[1], recs[0]], [recs[0], recs[0]]):
        assert_refused(post(client, tenants, "acme", "g1", encode_batch(bad)), 400, harness, 0)


def test_time_going_backwards(client, harness, tenants):
    register(client, tenants, "acme", "g1")
    recs = [data_record("disk0", 1, 500, 0, b"a" * 512), data_record("disk0", 2, 400, 0, b"b" * 512)]
    assert_refused(post(client, tenants, "acme", "g1", encode_batch(recs)), 400, harness, 0)
    post(client, tenants, "acme", "g1", encode_batch(recs[:1]))
    later = data_record("disk0", 2, 499, 0, b"c" * 512)
    assert_refused(post(client, tenants, "acme", "g1", encode_batch([later])), 400, harness, 1)


def test_record_for_foreign_volume(client, harness, tenants):
    register(client, tenants, "acme", "g1")
    register(client, tenants, "acme", "g2", volumes=(("disk9", VOLUME_SIZE),))
    body = encode_batch(records(1, 2) + records(3, 3, volume="disk9"))
    detail = assert_refused(post(client, tenants, "acme", "g1", body), 422, harness, 0)["detail"]
    assert "disk9" in detail


def test_write_past_end_of_volume(client, harness, tenants):
    register(client, tenants, "acme", "g1", volumes=(("disk0", 8192),))
    body = encode_batch([data_record("disk0", 1, 1, 8192 - 512, b"x" * 1024)])
    assert_refused(post(client, tenants, "acme", "g1", body), 422, harness, 0)


def test_oversize_body_by_content_length(client, harness, tenants):
    register(client, tenants, "acme", "g1")
    r = post(client, tenants, "acme", "g1", b"\0" * (MAX_BATCH_BYTES + 1))
    assert_refused(r, 413, harness, 0)


def test_oversize_body_without_content_length(client, harness, tenants):
    register(client, tenants, "acme", "g1")

    def chunks():
        for _ in range(20):
            yield b"\0" * 65536 * 2  # 2.5 MiB in total, streamed (chunked)

    r = client.post("/v1/groups/g1/batches", content=chunks(), headers=tenants.headers("acme"))
    assert_refused(r, 413, harness, 0)


def test_exactly_max_size_batch_is_accepted(client, harness, tenants):
    register(client, tenants, "acme", "g1")
    one = encode_batch([data_record("disk0", 1, 1, 0, b"")])
    payload = MAX_BATCH_BYTES - len(one)
    body = encode_batch([data_record("disk0", 1, 1, 0, b"z" * payload)])
    assert len(body) == MAX_BATCH_BYTES
    assert post(client, tenants, "acme", "g1", body).json() == {"acked_through": 1}
    assert produced(harness)[0].value == body


def test_wrong_content_type(client, harness, tenants):
    register(client, tenants, "acme", "g1")
    r = client.post("/v1/groups/g1/batches", content=batch(1, 1),
                    headers=tenants.headers("acme", **{"Content-Type": "application/json"}))
    assert_refused(r, 415, harness, 0)


def test_kafka_down_is_503_and_nothing_acked(client, harness, tenants):
    register(client, tenants, "acme", "g1")
    post(client, tenants, "acme", "g1", batch(1, 5))
    harness.broker.down()
    r = post(client, tenants, "acme", "g1", batch(6, 10))
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    assert "retry later" in r.json()["detail"]
    harness.broker.up()
    assert client.get("/v1/groups/g1", headers=tenants.headers("acme")).json()["acked_through"] == 5
    assert post(client, tenants, "acme", "g1", batch(6, 10)).json() == {"acked_through": 10}


def test_new_tenant_works_without_restart(client, harness, tenants):
    from shared.auth import create_tenant

    token = create_tenant(tenants.path, "initech")
    r = client.put("/v1/groups/g1", headers={"Authorization": f"Bearer {token}"},
                   json={"volumes": [{"volume": "disk0", "size": 4096}]})
    assert r.status_code == 200
    assert writes_topic("initech") in harness.broker.topics


def test_metrics_count_outcomes(client, harness, tenants):
    register(client, tenants, "acme", "g1")
    post(client, tenants, "acme", "g1", batch(1, 4))
    post(client, tenants, "acme", "g1", batch(1, 4))
    post(client, tenants, "acme", "g1", batch(9, 9))
    text = client.get("/metrics").text
    assert 'dialback_ingest_batches_total{outcome="accepted",reason="ok"} 1.0' in text
    assert 'dialback_ingest_records_total{outcome="accepted",reason="ok"} 4.0' in text
    assert 'dialback_ingest_batches_total{outcome="duplicate",reason="already_acked"} 1.0' in text
    assert 'dialback_ingest_batches_total{outcome="rejected",reason="gap"} 1.0' in text
    assert 'dialback_ingest_produce_seconds_count{log="writes"} 1.0' in text
    assert client.get("/healthz").json() == {"status": "ok"}
