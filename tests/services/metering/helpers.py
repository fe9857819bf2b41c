"""Building usage events and reconciling billing lines with raw events, independently of metering."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone

from shared.usage import METERS, Kind, Meter, new_event, subject

H0 = datetime(2026, 11, 25, 0, 0, tzinfo=timezone.utc)


def ev(tenant="acme", meter=Meter.INGEST_BYTES, q=100, at=H0, id=None, group="g1", **attrs):
    return new_event("/dialback/test", tenant, subject(tenant, "groups", group), meter, q, at, id, **attrs)


def expected_totals(events) -> dict:
    """(tenant, meter, subject, hour) -> quantity, straight from the raw accepted events."""
    by_id = {}
    for e in events:
        by_id.setdefault(e.id, e)  # a duplicate id is the same event
    out: dict = defaultdict(int)
    for e in by_id.values():
        k = (e.tenant, e.meter.value, e.subject, int(e.time.timestamp() // 3600))
        if METERS[e.meter].kind is Kind.GAUGE:
            out[k] = max(out[k], e.quantity)
        else:
            out[k] += e.quantity
    return dict(out)


def line_totals(lines) -> dict:
    out: dict = defaultdict(int)
    for ln in lines:
        if ln.type != "licence":
            out[(ln.tenant, ln.meter, ln.subject, ln.hour)] += ln.quantity
    return {k: v for k, v in out.items()}


def at(hours: float = 0, minutes: float = 0, seconds: float = 0) -> datetime:
    return H0 + timedelta(hours=hours, minutes=minutes, seconds=seconds)
