"""The usage-event schema: what is accepted, and the reason code for everything refused."""

import json
from datetime import datetime, timezone

import pytest

from shared.usage import (
    METERS, InvalidUsageEvent, Kind, MemoryEmitter, Meter, new_event, parse_event, subject, subject_group,
)

T = datetime(2026, 11, 25, 4, 30, 0, tzinfo=timezone.utc)


def doc(**over):
    d = new_event("/dialback/test", "acme", subject("acme", "groups", "g1"), Meter.INGEST_BYTES, 4096,
                  T, id="e1").to_cloudevent()
    data = over.pop("data", None)
    if data is not None:
        d["data"] = {**d["data"], **data}
    d.update(over)
    return d


def test_round_trip_keeps_every_field():
    ev = new_event("/dialback/burst", "acme", subject("acme", "servers", "s1"), Meter.BURST_SERVER_SECONDS,
                   3600, T, id="x", flavor="m1.small")
    back = parse_event(ev.to_json())
    assert back == ev
    ce = json.loads(ev.to_json())
    assert ce["specversion"] == "1.0" and ce["type"] == "io.dialback.usage.v1"
    assert ce["time"] == "2026-11-25T04:30:00Z" and ce["data"]["unit"] == "second"


def test_every_meter_has_a_unit_and_kind():
    for m in Meter:
        spec = METERS[m]
        assert spec.unit in ("byte", "second", "hour") and isinstance(spec.kind, Kind)


@pytest.mark.parametrize("mutate,reason", [
    (lambda d: d.pop("id"), "missing field"),
    (lambda d: d.pop("time"), "missing field"),
    (lambda d: d.pop("tenant"), "missing field"),
    (lambda d: d.pop("data"), "missing field"),
    (lambda d: d["data"].pop("quantity"), "missing field"),
    (lambda d: d["data"].update(meter="cpu.cycles"), "unknown meter"),
    (lambda d: d["data"].update(meter="license.burst.hours"), "reserved meter"),
    (lambda d: d["data"].update(quantity=-1), "negative quantity"),
    (lambda d: d["data"].update(quantity=1.5), "bad quantity"),
    (lambda d: d["data"].update(quantity=True), "bad quantity"),
    (lambda d: d["data"].update(unit="kilobyte"), "wrong unit"),
    (lambda d: d.update(subject="tenants/other/groups/g1"), "wrong tenant"),
    (lambda d: d.update(subject="groups/g1"), "wrong tenant"),
    (lambda d: d.update(time="yesterday"), "bad time"),
    (lambda d: d.update(time="2026-11-25T04:00:00"), "bad time"),
    (lambda d: d.update(type="io.dialback.usage.v9"), "unknown type"),
    (lambda d: d.update(tenant="Bad Tenant"), "bad tenant"),
])
def test_bad_events_are_refused_with_a_reason(mutate, reason):
    d = doc()
    mutate(d)
    with pytest.raises(InvalidUsageEvent) as exc:
        parse_event(json.dumps(d).encode())
    assert exc.value.reason == reason
    assert str(exc.value)  # a message the emitter's author can act on


def test_burst_needs_its_flavor():
    d = doc(subject="tenants/acme/servers/s1", data={"meter": "burst.server_seconds", "unit": "second"})
    with pytest.raises(InvalidUsageEvent, match="flavor"):
        parse_event(d)


def test_not_json_is_malformed():
    for raw in (b"{nope", b"[1,2]", "\xff".encode("latin-1"), None):
        with pytest.raises(InvalidUsageEvent) as exc:
            parse_event(raw)
        assert exc.value.reason == "malformed"


def test_memory_emitter_validates_at_the_source():
    em = MemoryEmitter("/dialback/test")
    ev = em.emit("acme", subject("acme", "groups", "g1"), "ingest.bytes", 10)
    assert em.events == [ev] and ev.time.tzinfo is not None and len(ev.id) == 36
    with pytest.raises(InvalidUsageEvent):
        em.emit("acme", subject("acme", "groups", "g1"), "ingest.bytes", -5)
    with pytest.raises(InvalidUsageEvent):
        em.emit("acme", "tenants/evil/groups/g1", "ingest.bytes", 5)
    assert len(em.events) == 1


def test_subject_helpers():
    s = subject("acme", "groups", "g1", "volumes", "disk0")
    assert s == "tenants/acme/groups/g1/volumes/disk0" and subject_group(s) == "g1"
    assert subject_group(subject("acme", "servers", "s1")) is None
