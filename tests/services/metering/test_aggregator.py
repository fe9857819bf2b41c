"""The metering state machine: exactly-once counting, hours, corrections, rejects, restore."""

import json
import random

from services.metering.aggregator import Aggregator, Policy
from services.metering.lines import BillingLine
from shared.usage import Meter

from tests.services.metering.helpers import H0, at, ev, expected_totals, line_totals

POLICY = Policy(lateness=300, horizon=6 * 3600, wall_clock=False)
NOW = H0.timestamp() + 10 * 24 * 3600  # wall clock is off; only event time drives hours


def run(agg, events, tag, raw=None):
    recs = [(None, e.to_json(), f"t/0/{i}") for i, e in enumerate(events)]
    recs += [(None, r, "t/0/x") for r in raw or []]
    return agg.process(recs, NOW, tag)


def test_duplicates_count_once_and_hour_closes_at_watermark():
    agg = Aggregator(POLICY)
    a, b = ev(q=100, at=at(0, 10), id="a"), ev(q=50, at=at(0, 20), id="b")
    out = run(agg, [a, b, a, b, a], "1")
    assert out.accepted == 2 and out.duplicates == 3 and out.lines == []
    # 01:04 leaves the watermark at 00:59: hour 0 still open
    out = run(agg, [ev(q=1, at=at(1, 4), id="c")], "2")
    assert out.lines == []
    out = run(agg, [ev(q=1, at=at(1, 5), id="d")], "3")
    assert [(ln.type, ln.quantity, ln.events) for ln in out.lines] == [("usage", 150, 2)]
    line = json.loads(out.lines[0].to_json())
    assert line["hour_start"] == "2026-11-25T00:00:00Z" and line["hour_end"] == "2026-11-25T01:00:00Z"


def test_out_of_order_events_land_in_their_hour():
    agg = Aggregator(POLICY)
    evs = [ev(q=i + 1, at=at(h, m), id=f"{h}-{m}") for i, (h, m) in
           enumerate([(2, 1), (0, 5), (1, 30), (0, 59), (2, 30), (1, 0)])]
    lines = run(agg, evs, "1").lines + run(agg, [ev(q=0, at=at(5), id="wm")], "2").lines
    assert line_totals(lines) == expected_totals(evs)
    assert all(ln.type == "usage" for ln in lines)


def test_late_event_after_publication_emits_a_correction_never_a_silent_change():
    agg = Aggregator(POLICY)
    lines = run(agg, [ev(q=100, at=at(0, 10), id="a"), ev(q=1, at=at(2), id="wm")], "1").lines
    (orig,) = lines
    out = run(agg, [ev(q=7, at=at(0, 50), id="late"), ev(q=7, at=at(0, 50), id="late")], "2")
    (corr,) = out.lines
    assert (corr.type, corr.quantity, corr.corrects, corr.version) == ("correction", 7, orig.id, 2)
    assert corr.id != orig.id and out.duplicates == 1
    # a late event for a bucket with no line yet is flagged too
    out = run(agg, [ev(q=9, at=at(0, 55), id="new", group="g2")], "3")
    assert [(ln.type, ln.quantity, ln.corrects) for ln in out.lines] == [("correction", 9, None)]


def test_gauges_take_the_peak_sample_per_subject_and_hour():
    agg = Aggregator(POLICY)
    evs = [ev(meter=Meter.STORED_BYTES, q=q, at=at(0, m), id=f"s{m}") for q, m in [(10, 1), (30, 2), (20, 3)]]
    lines = run(agg, evs + [ev(q=0, at=at(3), id="wm")], "1").lines
    stored = [ln for ln in lines if ln.meter == "storage.stored_bytes"]
    assert [(ln.quantity, ln.unit) for ln in stored] == [(30, "byte-hour")]
    out = run(agg, [ev(meter=Meter.STORED_BYTES, q=25, at=at(0, 4), id="s4")], "2")
    assert out.lines == []  # below the peak: nothing changes, nothing to correct
    out = run(agg, [ev(meter=Meter.STORED_BYTES, q=45, at=at(0, 5), id="s5")], "3")
    assert [(ln.type, ln.quantity) for ln in out.lines] == [("correction", 15)]


def test_bad_events_are_rejected_with_reason_and_never_counted():
    agg = Aggregator(POLICY)
    good = ev(q=5, at=at(0, 1), id="ok")
    bad_tenant = ev(q=5, at=at(0, 1), id="x").to_cloudevent()
    bad_tenant["subject"] = "tenants/other/groups/g1"
    neg = ev(at=at(0, 1), id="n").to_cloudevent()
    neg["data"]["quantity"] = -3
    unknown = ev(at=at(0, 1), id="u").to_cloudevent()
    unknown["data"]["meter"] = "gpu.seconds"
    missing = ev(at=at(0, 1), id="m").to_cloudevent()
    del missing["time"]
    raw = [json.dumps(d).encode() for d in (bad_tenant, neg, unknown, missing)] + [b"garbage"]
    out = run(agg, [good], "1", raw)
    assert sorted(r.reason for r in out.rejects) == sorted(
        ["wrong tenant", "negative quantity", "unknown meter", "missing field", "malformed"])
    lines = run(agg, [ev(q=0, at=at(3), id="wm")], "2").lines
    assert line_totals(lines)[("acme", "ingest.bytes", "tenants/acme/groups/g1", int(H0.timestamp() // 3600))] == 5


def test_events_beyond_the_dedupe_horizon_are_too_late_and_state_is_bounded():
    agg = Aggregator(POLICY)
    run(agg, [ev(q=1, at=at(0, 1), id="old")], "1")
    run(agg, [ev(q=1, at=at(12), id="wm")], "2")  # watermark 11:55, horizon 6h -> hours < 5 forgotten
    assert min(agg.seen) >= int(at(5).timestamp() // 3600) and min(agg.hours) >= int(at(5).timestamp() // 3600)
    out = run(agg, [ev(q=1, at=at(0, 1), id="old"), ev(q=1, at=at(4, 59), id="older")], "3")
    assert [r.reason for r in out.rejects] == ["too late", "too late"] and out.accepted == 0


def test_future_events_are_refused_when_the_wall_clock_counts():
    agg = Aggregator(Policy(wall_clock=True, max_future=600))
    now = at(1).timestamp()
    out = agg.process([(None, ev(at=at(1, 30), id="f").to_json(), "w")], now, "1")
    assert [r.reason for r in out.rejects] == ["time in future"]


def test_wall_clock_closes_an_idle_hour():
    agg = Aggregator(Policy(wall_clock=True, lateness=60))
    agg.process([(None, ev(q=3, at=at(0, 30), id="a").to_json(), "w")], at(0, 31).timestamp(), "1")
    assert agg.tick(at(1, 0, 59).timestamp(), "2").lines == []
    lines = agg.tick(at(1, 1, 1).timestamp(), "3").lines
    assert [(ln.type, ln.quantity) for ln in lines] == [("usage", 3)]


def test_restore_from_changelog_continues_exactly_once():
    rng = random.Random(5)
    events = [ev(q=rng.randrange(1, 10_000), at=at(rng.uniform(0, 4)), id=f"e{i}",
                 group=rng.choice(["g1", "g2"])) for i in range(400)]
    stream = events + rng.sample(events, 150)  # redelivered duplicates
    rng.shuffle(stream)
    stream += [ev(q=0, at=at(9), id="wm")]
    log: dict = {}
    agg = Aggregator(POLICY)
    lines: list[BillingLine] = []
    for n, i in enumerate(range(0, len(stream), 37)):
        if n % 4 == 3:  # restart: a new aggregator rebuilt from the compacted changelog only
            agg = Aggregator(POLICY)
            for k, v in log.items():
                agg.restore(k, v)
        out = run(agg, stream[i:i + 37], f"b{n}")
        lines += out.lines
        for k, v in out.changelog:
            log[k] = v
    assert line_totals(lines) == expected_totals(events)  # hour 9 (the watermark event) is still open
    assert len({ln.id for ln in lines}) == len(lines)
