"""The billing feed as the API sees it: lines read back from ``dialback.billing``, summed by period.

Lines are kept by id, so a line read twice counts once. A period's quantity is
the sum of every line of its hours, corrections included: it equals the sum
of the accepted raw events (peaks per subject and hour for gauge meters).
"""

from __future__ import annotations

import csv
import io
import json
import threading
from collections import defaultdict
from datetime import datetime, timezone

from services.metering.lines import HOUR, BillingLine, hour_iso

PERIOD_HOURS = {"hour": 1, "day": 24}


class QueryError(ValueError):
    """A usage query the feed cannot answer as asked; the message says how to fix it."""


def parse_period(start: datetime, end: datetime, granularity: str) -> tuple[int, int, int]:
    """(first hour, end hour, hours per period); validated before any work."""
    if granularity not in PERIOD_HOURS:
        raise QueryError(f"granularity {granularity!r} is unknown: use 'hour' or 'day'")
    step = PERIOD_HOURS[granularity]
    bounds = []
    for name, t in (("from", start), ("to", end)):
        if t.tzinfo is None:
            t = t.replace(tzinfo=timezone.utc)
        ts = t.timestamp()
        if ts % (step * HOUR):
            raise QueryError(f"'{name}' {t.isoformat()} is not on a {granularity} boundary (UTC); "
                             f"round it to the {granularity}")
        bounds.append(int(ts // HOUR))
    if bounds[1] <= bounds[0]:
        raise QueryError("'to' must be after 'from'")
    if bounds[1] - bounds[0] > 24 * 366:
        raise QueryError("ask for at most 366 days at a time")
    return bounds[0], bounds[1], step


class BillingFeed:
    def __init__(self) -> None:
        self._lines: dict[str, BillingLine] = {}
        self._by_tenant: dict[str, list[BillingLine]] = defaultdict(list)
        self._lock = threading.Lock()

    def apply_record(self, _key: bytes | None, value: bytes | None) -> None:
        if value is None:
            return
        line = BillingLine.from_json(value)
        with self._lock:
            if line.id in self._lines:
                return
            self._lines[line.id] = line
            self._by_tenant[line.tenant].append(line)

    def __len__(self) -> int:
        return len(self._lines)

    def tenants(self) -> list[str]:
        with self._lock:
            return sorted(self._by_tenant)

    def lines(self, tenant: str | None = None) -> list[BillingLine]:
        with self._lock:
            return list(self._by_tenant.get(tenant, [])) if tenant else list(self._lines.values())

    def query(self, tenant: str | None, start: datetime, end: datetime, granularity: str = "hour",
              by_subject: bool = False) -> list[dict]:
        first, last, step = parse_period(start, end, granularity)
        rows: dict[tuple, dict] = {}
        for ln in self.lines(tenant):
            if not first <= ln.hour < last:
                continue
            period = ln.hour - (ln.hour - first) % step
            attrs = json.dumps(ln.attributes, sort_keys=True)
            key = (ln.tenant, ln.meter, ln.unit, attrs, ln.subject if by_subject else "", period)
            row = rows.get(key)
            if row is None:
                row = rows[key] = {"tenant": ln.tenant, "meter": ln.meter, "unit": ln.unit,
                                   "attributes": ln.attributes, "period_start": hour_iso(period),
                                   "period_end": hour_iso(period + step), "quantity": 0, "lines": 0,
                                   "corrections": 0}
                if by_subject:
                    row["subject"] = ln.subject
            row["quantity"] += ln.quantity
            row["lines"] += 1
            row["corrections"] += ln.type == "correction"
        return [rows[k] for k in sorted(rows)]


CSV_FIELDS = ["tenant", "meter", "unit", "attributes", "subject", "period_start", "period_end", "quantity",
              "lines", "corrections"]


def rows_to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({**r, "attributes": ";".join(f"{k}={v}" for k, v in sorted(r["attributes"].items())),
                    "subject": r.get("subject", "")})
    return buf.getvalue()


def totals(rows: list[dict]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for r in rows:
        out[r["meter"]] += r["quantity"]
    return dict(out)
