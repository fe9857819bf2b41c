"""The metering state machine: usage events in; billing lines, rejects and state changes out.

Pure and deterministic (no Kafka, no clock of its own): the runner feeds it a
batch, takes its :class:`Output` and commits that output together with the
input offsets in one Kafka transaction. State is rebuilt after a restart by
replaying the ``changelog`` records it emitted (:meth:`Aggregator.restore`),
so a batch is either fully applied (state, lines, offsets) or not at all.

Invariants:

* An event id counts once: ids seen are kept per event hour until the hour
  falls out of the dedupe horizon; an event older than that is rejected
  (``too late``) rather than risk counting it twice.
* An event lands in the hour of its own ``time``, whatever order it arrives in.
* An hour closes when the watermark (max of event time and, if enabled, the
  wall clock, minus the allowed lateness) passes its end; its lines are then
  published. A change to a closed hour publishes a correction line (delta).
* Bad events go to the dead-letter output with their reason and never count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from shared.usage import METERS, LICENSE_METER, InvalidUsageEvent, Kind, parse_fields, subject_group
from shared.licences import LicenceBook
from services.metering.lines import HOUR, BillingLine, hour_iso, line_id

IDS_PER_RECORD = 4000  # keeps each changelog record far below Kafka's 1 MiB message limit


@dataclass
class Bucket:
    quantity: int = 0
    events: int = 0
    published: int = 0      # quantity already in the feed
    version: int = 0        # lines published for this bucket (0 = none)

    def to_json(self) -> bytes:
        return json.dumps([self.quantity, self.events, self.published, self.version]).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "Bucket":
        return cls(*json.loads(raw))


@dataclass
class Reject:
    reason: str
    message: str
    raw: bytes
    key: bytes | None
    where: object  # where the record came from (the runner passes (topic, partition, offset))


@dataclass
class Output:
    lines: list[BillingLine] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    changelog: list[tuple[str, bytes | None]] = field(default_factory=list)
    accepted: int = 0
    duplicates: int = 0

    def __bool__(self) -> bool:
        return bool(self.lines or self.rejects or self.changelog)


BKey = tuple  # (tenant, meter, hour, dims, subject): in memory; "b|<json list>" in the changelog


def bucket_key(tenant: str, meter: str, subject: str, dims: str, hour: int) -> str:
    """The changelog key (and line-id seed) of a bucket."""
    return "b|" + json.dumps([tenant, meter, hour, dims, subject], separators=(",", ":"))


def _ckey(k: BKey) -> str:
    return bucket_key(k[0], k[1], k[4], k[3], k[2])


@dataclass
class Policy:
    lateness: float = 300.0          # seconds an hour stays open after the watermark passes its end
    horizon: float = 48 * 3600.0     # seconds of event ids kept for dedupe; older events are too late
    max_future: float = 600.0        # events further ahead of the wall clock are refused
    wall_clock: bool = True          # close hours by wall clock too (not only by event time)


class Aggregator:
    def __init__(self, policy: Policy | None = None, licences: LicenceBook | None = None) -> None:
        self.policy = policy or Policy()
        self.licences = licences or LicenceBook()
        self.buckets: dict[BKey, Bucket] = {}
        self.hours: dict[int, set[BKey]] = {}        # hour -> bucket keys
        self.seen: dict[int, set[str]] = {}          # hour -> event ids
        self.seen_keys: dict[int, list[str]] = {}    # hour -> changelog keys holding those ids
        self.max_event = 0.0
        self.closed_through = 0                      # every hour < this is closed (published)
        self.expired_before = 0                      # ids of hours < this are forgotten: too late
        self._meta_written: bytes | None = None
        self._dirty: set[BKey] = set()
        self._new_ids: dict[int, list[str]] = {}

    # ---- restore -------------------------------------------------------
    def restore(self, key: str, value: bytes | None) -> None:
        """Apply one changelog record (replayed in order, latest per key wins)."""
        if key.startswith("b|"):
            bk = tuple(json.loads(key[2:]))
            hour = bk[2]
            if value is None:
                self.buckets.pop(bk, None)
                self.hours.get(hour, set()).discard(bk)
            else:
                self.buckets[bk] = Bucket.from_json(value)
                self.hours.setdefault(hour, set()).add(bk)
        elif key.startswith("s|"):
            hour = int(key.split("|")[1])
            if value is None:
                if key in self.seen_keys.get(hour, []):
                    self.seen_keys[hour].remove(key)
                if not self.seen_keys.get(hour):
                    self.seen.pop(hour, None)
                    self.seen_keys.pop(hour, None)
            else:
                self.seen.setdefault(hour, set()).update(json.loads(value))
                self.seen_keys.setdefault(hour, []).append(key)
        elif key == "meta" and value is not None:
            meta = json.loads(value)
            self.max_event = meta["max_event"]
            self.closed_through = meta["closed_through"]
            self.expired_before = meta.get("expired_before", 0)
            self._meta_written = value

    # ---- process -------------------------------------------------------
    def watermark(self, now: float) -> float:
        wm = max(self.max_event, now) if self.policy.wall_clock else self.max_event
        return wm - self.policy.lateness

    def process(self, records, now: float, tag: str, out: Output | None = None) -> Output:
        """Apply a batch of ``(key, value, where)`` records; ``tag`` must be unique per batch."""
        out = out or Output()
        p = self.policy
        licensed = self.licences.licensed if self.licences.licences else None
        too_old = max(self.expired_before, int((self.watermark(now) - p.horizon) // HOUR))
        seen_by_hour, new_ids_by_hour, buckets = self.seen, self._new_ids, self.buckets
        dirty, specs, gauge = self._dirty, METERS_BY_NAME, Kind.GAUGE
        max_event = self.max_event
        for key, value, where in records:
            try:
                eid, _src, tenant, subj, t, mname, quantity, attrs = parse_fields(value)
            except InvalidUsageEvent as err:
                out.rejects.append(Reject(err.reason, str(err), value, key, where))
                continue
            hour = int(t // HOUR)
            if p.wall_clock and t > now + p.max_future:
                out.rejects.append(Reject("time in future", f"event time {t:.0f} (epoch s) is more than "
                                          f"{p.max_future:.0f}s ahead of the metering clock; fix the "
                                          "emitter's clock", value, key, where))
                continue
            if hour < too_old:
                out.rejects.append(Reject("too late", f"event hour {hour_iso(hour)} is older than "
                                          f"the dedupe horizon ({p.horizon:.0f}s); it can no longer be "
                                          "counted exactly once", value, key, where))
                continue
            seen = seen_by_hour.get(hour)
            if seen is None:
                seen = seen_by_hour[hour] = set()
            if eid in seen:
                out.duplicates += 1
                continue
            spec = specs[mname]
            if licensed is not None and spec.feature is not None and not licensed(
                    tenant, spec.feature, subject_group(subj), hour):
                out.rejects.append(Reject("not licensed", f"{spec.feature.value} is switched off for "
                                          f"{subj} in that hour; switch it on to be metered",
                                          value, key, where))
                continue
            seen.add(eid)
            new_ids = new_ids_by_hour.get(hour)
            if new_ids is None:
                new_ids = new_ids_by_hour[hour] = []
            new_ids.append(eid)
            dims = ",".join(f"{d}={attrs[d]}" for d in spec.dimensions) if spec.dimensions else ""
            bkey = (tenant, mname, hour, dims, subj)
            b = buckets.get(bkey)
            if b is None:
                b = buckets[bkey] = Bucket()
                self.hours.setdefault(hour, set()).add(bkey)
            if spec.kind is gauge:
                if quantity > b.quantity:
                    b.quantity = quantity
            else:
                b.quantity += quantity
            b.events += 1
            dirty.add(bkey)
            out.accepted += 1
            if t > max_event:
                max_event = self.max_event = t
                too_old = max(too_old, int((self.watermark(now) - p.horizon) // HOUR))
        self._flush(now, tag, out)
        return out

    def tick(self, now: float, tag: str) -> Output:
        """Close hours by the clock alone (no new events)."""
        out = Output()
        self._flush(now, tag, out)
        return out

    # ---- internals -----------------------------------------------------
    def _line(self, bkey: BKey, b: Bucket, now: float, closing: bool) -> BillingLine:
        tenant, meter, hour, dims, subj = bkey
        ckey = _ckey(bkey)
        delta = b.quantity - b.published
        prev = line_id(ckey, b.version) if b.version else None
        b.version += 1
        line = BillingLine(
            id=line_id(ckey, b.version), type="usage" if closing else "correction", tenant=tenant,
            meter=meter, unit=METERS_BY_NAME[meter].line_unit, subject=subj, hour=hour, quantity=delta,
            events=b.events, version=b.version,
            attributes=dict(kv.split("=", 1) for kv in dims.split(",")) if dims else {},
            corrects=None if closing else prev, published_at=now)
        b.published = b.quantity
        return line

    def _flush(self, now: float, tag: str, out: Output) -> None:
        new_closed = int(self.watermark(now) // HOUR)
        closing: set[BKey] = set()
        if new_closed > self.closed_through:
            for hour in sorted(h for h in self.hours if self.closed_through <= h < new_closed):
                for bkey in sorted(self.hours[hour]):
                    b = self.buckets[bkey]
                    if b.version == 0:
                        out.lines.append(self._line(bkey, b, now, closing=True))
                        closing.add(bkey)
                        self._dirty.add(bkey)
            first = self.closed_through or (min(self.hours) if self.hours else new_closed - 1)
            for lic, hour in self.licences.charged_hours(first, new_closed):
                self._licence_line(lic, hour, now, out)
            self.closed_through = new_closed
        for bkey in sorted(self._dirty - closing):
            b = self.buckets[bkey]
            hour = bkey[2]
            if hour < self.closed_through and b.quantity != b.published:
                out.lines.append(self._line(bkey, b, now, closing=False))
        for bkey in sorted(self._dirty):
            out.changelog.append((_ckey(bkey), self.buckets[bkey].to_json()))
        for hour, ids in sorted(self._new_ids.items()):
            for i in range(0, len(ids), IDS_PER_RECORD):
                skey = f"s|{hour}|{tag}|{i // IDS_PER_RECORD}"
                out.changelog.append((skey, json.dumps(ids[i:i + IDS_PER_RECORD]).encode()))
                self.seen_keys.setdefault(hour, []).append(skey)
        self._dirty.clear()
        self._new_ids.clear()
        self._expire(now, out)
        meta = json.dumps({"max_event": self.max_event, "closed_through": self.closed_through,
                           "expired_before": self.expired_before}).encode()
        if meta != self._meta_written:
            out.changelog.append(("meta", meta))
            self._meta_written = meta

    def _licence_line(self, lic, hour: int, now: float, out: Output) -> None:
        meter = LICENSE_METER[lic.feature].value
        subj = f"tenants/{lic.tenant}" + (f"/groups/{lic.group}" if lic.group else "")
        bkey = bucket_key(lic.tenant, meter, subj, "", hour)
        out.lines.append(BillingLine(id=line_id(bkey, 1), type="licence", tenant=lic.tenant, meter=meter,
                                     unit="hour", subject=subj, hour=hour, quantity=1, events=0, version=1,
                                     published_at=now))

    def _expire(self, now: float, out: Output) -> None:
        """Forget hours beyond the dedupe horizon (bounded state); their events are now too late."""
        limit = min(int((self.watermark(now) - self.policy.horizon) // HOUR), self.closed_through)
        if limit > self.expired_before:
            self.expired_before = limit
        for hour in [h for h in self.seen if h < limit]:
            for skey in self.seen_keys.pop(hour, []):
                out.changelog.append((skey, None))
            del self.seen[hour]
        for hour in [h for h in self.hours if h < limit]:
            for bkey in self.hours.pop(hour):
                self.buckets.pop(bkey, None)
                out.changelog.append((_ckey(bkey), None))


METERS_BY_NAME = {m.value: spec for m, spec in METERS.items()}
