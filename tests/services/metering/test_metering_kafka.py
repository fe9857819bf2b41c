"""Proof on real Kafka: duplicates, reordering, late events and a SIGKILL of metering mid-hour;
the billing feed reconciles with the raw events to the byte and the second; bad events go to the
dead-letter topic with their reason and never count."""

from __future__ import annotations

import json
import random
import time
from collections import Counter

import pytest

from shared.bus.tail import replay
from services.metering.lines import BillingLine
from shared.usage import Meter, UsageEmitter, new_event, subject

from tests.services.metering.helpers import at, expected_totals, line_totals

pytestmark = pytest.mark.integration


@pytest.fixture
def metering(metering_factory):
    return metering_factory(["acme", "globex"])


def make_events(rng: random.Random, n: int, hours: int):
    evs = []
    for i in range(n):
        tenant = rng.choice(["acme", "globex"])
        group = rng.choice(["g1", "g2"])
        t = at(seconds=rng.uniform(0, hours * 3600 - 1))
        kind = rng.random()
        if kind < 0.5:
            e = new_event("/dialback/ingest", tenant, subject(tenant, "groups", group), Meter.INGEST_BYTES,
                          rng.randrange(1, 1 << 30), t)
        elif kind < 0.7:
            e = new_event("/dialback/retention", tenant, subject(tenant, "groups", group), Meter.STORED_BYTES,
                          rng.randrange(1, 1 << 40), t)
        elif kind < 0.85:
            e = new_event("/dialback/ingest", tenant, subject(tenant, "groups", group),
                          Meter.PROTECTED_VOLUME_SECONDS, rng.randrange(1, 3600), t)
        else:
            e = new_event("/dialback/burst", tenant, subject(tenant, "servers", f"s{i % 3}"),
                          Meter.BURST_SERVER_SECONDS, rng.randrange(1, 3600), t,
                          flavor=rng.choice(["m1.small", "m1.large"]))
        evs.append(e)
    return evs


def bad_events():
    good = new_event("/dialback/test", "acme", subject("acme", "groups", "g1"), Meter.INGEST_BYTES, 7, at(1))
    docs = {}
    d = good.to_cloudevent(); del d["time"]; docs["missing field"] = d
    d = good.to_cloudevent(); d["data"]["meter"] = "cpu.cycles"; docs["unknown meter"] = d
    d = good.to_cloudevent(); d["data"]["quantity"] = -1; docs["negative quantity"] = d
    d = good.to_cloudevent(); d["subject"] = "tenants/globex/groups/g1"; docs["wrong tenant"] = d
    out = {reason: json.dumps({**d, "id": f"bad-{reason}"}).encode() for reason, d in docs.items()}
    out["malformed"] = b"{not json"
    return out


def test_feed_reconciles_with_raw_events_through_duplicates_reordering_late_events_and_a_crash(metering):
    rng = random.Random(42)
    env = metering.env
    emitter = UsageEmitter(env["DIALBACK_KAFKA_BOOTSTRAP"], "/dialback/test", env["DIALBACK_USAGE_TOPIC"])
    events = make_events(rng, 4000, hours=4)
    events.sort(key=lambda e: e.time.timestamp() + rng.uniform(-1800, 1800))  # reordered by up to 30 min
    sent = []

    def send(batch):
        for e in batch:
            emitter.emit_raw(e.tenant, e.to_json())
            sent.append(e)
        emitter.flush()

    # the first instance dies by itself inside its 3rd transaction: records produced, not committed
    metering.start(DIALBACK_METERING_FAULT_EXIT_AFTER="3")
    chunks = [events[i:i + 200] for i in range(0, len(events), 200)]
    faulted = False
    for n, chunk in enumerate(chunks):
        if n == 3:
            metering.proc.wait(60)  # 660 events in batches of <= 200: it must have reached transaction 3
        if metering.proc.poll() is not None:
            assert metering.proc.returncode == 17
            faulted = True
            metering.start()
        send(chunk + rng.sample(sent or chunk, 20))  # every chunk redelivers 20 earlier events
        if n == len(chunks) // 2:
            for raw in bad_events().values():
                emitter.emit_raw("acme", raw)
            emitter.flush()
        if n in (4, 13):
            time.sleep(rng.uniform(0.05, 0.3))
            metering.kill()  # mid-hour, mid-stream: a batch may be half done
            send(rng.sample(sent, 100))  # redelivered while metering is down
            metering.start()
        time.sleep(0.05)
    # close hours 0-3 (watermark = 05:00 - 5 min), then send late events into published hours
    closer = new_event("/dialback/test", "acme", subject("acme", "groups", "g1"), Meter.INGEST_BYTES, 1, at(5))
    send([closer])
    wait_for_lines(metering, lambda lines: any(ln.hour == hour(3) for ln in lines))
    late = [new_event("/dialback/ingest", "acme", subject("acme", "groups", "g1"), Meter.INGEST_BYTES, 1000 + i,
                      at(0, 30 + i)) for i in range(5)]
    late.append(new_event("/dialback/ingest", "globex", subject("globex", "groups", "g9"),
                          Meter.PROTECTED_VOLUME_SECONDS, 1234, at(1, 10)))
    send(late + late[:3])
    metering.kill()
    metering.start()
    send(late)  # redelivered after the restart: still counted once
    send([new_event("/dialback/test", "acme", subject("acme", "groups", "g1"), Meter.INGEST_BYTES, 1, at(9))])

    assert faulted, "the fault-injected instance never died: the test did not test a mid-transaction crash"
    expected = {k: v for k, v in expected_totals(sent).items() if k[3] < hour(9)}
    lines = wait_for_lines(metering, lambda ls: line_totals(ls) == expected, timeout=90)
    assert line_totals(lines) == expected  # to the byte and the second, per tenant, meter, subject, hour
    assert len(expected) > 50
    assert len({ln.id for ln in lines}) == len(lines)
    corrections = [ln for ln in lines if ln.type == "correction"]
    assert len(corrections) >= 6
    by_id = {ln.id: ln for ln in lines}
    for c in corrections:
        assert c.corrects is None or by_id[c.corrects].hour == c.hour

    # the dead-letter topic holds exactly the bad events, each with its reason
    dlq = []
    replay(env["DIALBACK_KAFKA_BOOTSTRAP"], env["DIALBACK_DLQ_TOPIC"], lambda k, v: dlq.append(json.loads(v)))
    assert Counter(d["reason"] for d in dlq) == Counter(bad_events().keys())
    assert all(d["message"] and d["source"].startswith(env["DIALBACK_USAGE_TOPIC"]) for d in dlq)

    # REST: tenants see their own usage, and it matches the raw events; the provider sees all
    for tenant, token in metering.tokens.items():
        r = metering.get(f"/v1/tenants/{tenant}/usage", token, **{"from": "2026-11-25T00:00:00Z",
                                                                  "to": "2026-11-25T09:00:00Z", "by": "subject"})
        assert r.status_code == 200, r.text
        got = Counter()  # burst rows are split by flavor too
        for row in r.json()["rows"]:
            got[(tenant, row["meter"], row["subject"], hour_of(row["period_start"]))] += row["quantity"]
        assert dict(got) == {k: v for k, v in expected.items() if k[0] == tenant}
    other = metering.get("/v1/tenants/globex/usage", metering.tokens["acme"], **{"from": "2026-11-25T00:00:00Z",
                                                                                 "to": "2026-11-26T00:00:00Z"})
    assert other.status_code == 404
    assert metering.get("/v1/usage", metering.tokens["acme"], **{"from": "2026-11-25T00:00:00Z",
                                                                 "to": "2026-11-26T00:00:00Z"}).status_code == 403
    day = metering.get("/v1/usage", metering.admin(), **{"from": "2026-11-25T00:00:00Z",
                                                         "to": "2026-11-26T00:00:00Z", "granularity": "day"})
    assert day.status_code == 200
    want = Counter()
    for (_t, meter, _s, _h), q in expected.items():
        want[meter] += q
    assert day.json()["totals"] == dict(want)
    csv_text = metering.get("/v1/usage", metering.admin(), **{"from": "2026-11-25T00:00:00Z",
                                                              "to": "2026-11-26T00:00:00Z", "granularity": "day",
                                                              "format": "csv"}).text
    rows = csv_text.strip().splitlines()
    assert rows[0].startswith("tenant,meter,unit")
    assert sum(int(r.split(",")[7]) for r in rows[1:]) == sum(expected.values())


def hour(h: int) -> int:
    return int(at(h).timestamp() // 3600)


def hour_of(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso).timestamp() // 3600)


def wait_for_lines(metering, done, timeout: float = 60.0) -> list[BillingLine]:
    deadline = time.monotonic() + timeout
    while True:
        lines: list[BillingLine] = []
        replay(metering.env["DIALBACK_KAFKA_BOOTSTRAP"], metering.env["DIALBACK_BILLING_TOPIC"],
               lambda k, v: lines.append(BillingLine.from_json(v)))
        if done(lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.5)


def test_a_second_instance_fences_the_first_and_nothing_counts_twice(metering_factory):
    from deploy.local.process import free_port

    from tests.services.metering.conftest import Metering

    a = metering_factory(["acme"])
    a.start()
    b = Metering({**a.env, "DIALBACK_METERING_PORT": str(free_port())}, a.tokens, a.tmp)
    em = UsageEmitter(a.env["DIALBACK_KAFKA_BOOTSTRAP"], "/dialback/test", a.env["DIALBACK_USAGE_TOPIC"])
    first = [new_event("/t", "acme", subject("acme", "groups", "g1"), Meter.INGEST_BYTES, 10 + i, at(0, i))
             for i in range(50)]
    for e in first:
        em.emit_raw("acme", e.to_json())
    em.flush()
    wait_for_lines(a, lambda ls: False, timeout=2)
    try:
        b.start()  # same transactional id and group instance id: b fences a
        later = [new_event("/t", "acme", subject("acme", "groups", "g1"), Meter.INGEST_BYTES, 100 + i,
                           at(0, 30 + i)) for i in range(20)]
        closer = new_event("/t", "acme", subject("acme", "groups", "g1"), Meter.INGEST_BYTES, 1, at(3))
        for e in later + first + [closer]:
            em.emit_raw("acme", e.to_json())
        em.flush()
        a.proc.wait(60)  # the fenced instance stops by itself
        assert a.proc.returncode not in (0, None)
        expected = {k: v for k, v in expected_totals(first + later).items()}
        lines = wait_for_lines(a, lambda ls: line_totals(ls) == expected, timeout=60)
        assert line_totals(lines) == expected
        assert b.proc.poll() is None
    finally:
        b.kill()
