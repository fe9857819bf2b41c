"""Usage events: the one schema every service emits to ``dialback.usage``.

A usage event is a CloudEvents 1.0 structured-mode JSON document::

    {"specversion": "1.0", "type": "io.dialback.usage.v1",
     "id": "<unique>", "source": "/dialback/ingest", "time": "2026-11-25T04:00:00Z",
     "subject": "tenants/<tenant>/groups/<group>", "tenant": "<tenant>",
     "datacontenttype": "application/json",
     "data": {"meter": "ingest.bytes", "quantity": 4096, "unit": "byte",
              "attributes": {"flavor": "m1.small"}}}

Contracts:

* ``id`` is unique per event: the same id sent twice is the same event and
  metering counts it once (redelivery and client retries are harmless).
* ``quantity`` is a non-negative integer in the meter's unit (bytes or
  seconds), so totals reconcile exactly, to the byte and the second.
* ``subject`` names the metered thing and starts with ``tenants/<tenant>/``;
  an event whose subject belongs to another tenant is refused.
* The version is part of ``type``. An older version is upcast by
  :data:`UPCASTERS` before validation; an unknown type is refused.

:func:`parse_event` never raises anything but :class:`InvalidUsageEvent`,
whose ``reason`` is a short stable code (for the dead-letter topic) and whose
message says what to fix.
"""

from __future__ import annotations

import enum
import functools
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Mapping

import orjson

from shared.errors import DialbackError
from shared.tenancy import USAGE_TOPIC, check_tenant

SPECVERSION = "1.0"
EVENT_TYPE = "io.dialback.usage.v1"
SCHEMA_VERSION = 1
DLQ_TOPIC = USAGE_TOPIC + ".dlq"
MAX_EVENT_BYTES = 16 * 1024
MAX_QUANTITY = 1 << 62  # keeps sums far away from any 64-bit consumer's overflow


class Kind(str, enum.Enum):
    SUM = "sum"        # counter: the hour's quantity is the sum of its events
    GAUGE = "gauge"    # sample: the hour's quantity is the subject's peak sample (x 1 hour)
    LICENSE = "license"  # produced by metering itself: hours a licence was on


class Feature(str, enum.Enum):
    """Licensable services (switchable per tenant or per protection group)."""

    PROTECTION = "protection"
    INSTANT_ACCESS = "instant_access"
    BURST = "burst"


@dataclass(frozen=True)
class MeterSpec:
    unit: str           # unit of an event's quantity
    line_unit: str      # unit of the hourly billing line
    kind: Kind
    feature: Feature | None  # the licence that must be on for the meter to count
    dimensions: tuple[str, ...] = ()  # attributes that split a meter's lines (burst flavor)
    description: str = ""


class Meter(str, enum.Enum):
    INGEST_BYTES = "ingest.bytes"
    LOGICAL_BYTES = "storage.logical_bytes"
    STORED_BYTES = "storage.stored_bytes"
    PROTECTED_VOLUME_SECONDS = "protection.volume_seconds"
    RECOVERY_IMAGE_BYTES = "recovery.image_bytes"
    INSTANT_ACCESS_SECONDS = "instant_access.seconds"
    DR_TEST_SECONDS = "drtest.seconds"
    BURST_SERVER_SECONDS = "burst.server_seconds"
    PURGED_BYTES = "data.purged_bytes"
    LICENSE_PROTECTION_HOURS = "license.protection.hours"
    LICENSE_INSTANT_ACCESS_HOURS = "license.instant_access.hours"
    LICENSE_BURST_HOURS = "license.burst.hours"

    @property
    def spec(self) -> MeterSpec:
        return METERS[self]


METERS: dict[Meter, MeterSpec] = {
    Meter.INGEST_BYTES: MeterSpec("byte", "byte", Kind.SUM, Feature.PROTECTION,
                                  description="bytes of writes accepted by ingest"),
    Meter.LOGICAL_BYTES: MeterSpec("byte", "byte-hour", Kind.GAUGE, Feature.PROTECTION,
                                   description="hourly sample: logical size of the protected data"),
    Meter.STORED_BYTES: MeterSpec("byte", "byte-hour", Kind.GAUGE, Feature.PROTECTION,
                                  description="hourly sample: bytes held in object storage"),
    Meter.PROTECTED_VOLUME_SECONDS: MeterSpec("second", "second", Kind.SUM, Feature.PROTECTION,
                                              description="volume-time under protection"),
    Meter.RECOVERY_IMAGE_BYTES: MeterSpec("byte", "byte", Kind.SUM, None,
                                          description="bytes of recovery images built"),
    Meter.INSTANT_ACCESS_SECONDS: MeterSpec("second", "second", Kind.SUM, Feature.INSTANT_ACCESS,
                                            description="time an image was exported for instant access"),
    Meter.DR_TEST_SECONDS: MeterSpec("second", "second", Kind.SUM, Feature.BURST,
                                     description="time spent in DR tests"),
    Meter.BURST_SERVER_SECONDS: MeterSpec("second", "second", Kind.SUM, Feature.BURST, ("flavor",),
                                          description="burst server time, per flavor"),
    Meter.PURGED_BYTES: MeterSpec("byte", "byte", Kind.SUM, None,
                                  description="bytes deleted after a licence's grace period"),
    Meter.LICENSE_PROTECTION_HOURS: MeterSpec("hour", "hour", Kind.LICENSE, Feature.PROTECTION),
    Meter.LICENSE_INSTANT_ACCESS_HOURS: MeterSpec("hour", "hour", Kind.LICENSE, Feature.INSTANT_ACCESS),
    Meter.LICENSE_BURST_HOURS: MeterSpec("hour", "hour", Kind.LICENSE, Feature.BURST),
}

LICENSE_METER = {spec.feature: m for m, spec in METERS.items() if spec.kind is Kind.LICENSE}
_METER_BY_NAME = {m.value: m for m in Meter}
# str-keyed: Enum.__hash__ is Python code, a str hash is not; this lookup runs once per event
_SPEC_BY_NAME = {m.value: (m, spec) for m, spec in METERS.items()}
SPEC_BY_NAME = _SPEC_BY_NAME
_NO_ATTRS: dict = {}


class InvalidUsageEvent(DialbackError, ValueError):
    """An event metering must refuse; ``reason`` is the dead-letter code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def subject(tenant: str, *parts: str) -> str:
    """``subject("acme", "groups", "g1")`` -> ``"tenants/acme/groups/g1"``."""
    if not parts:
        raise ValueError("a subject names a thing under the tenant: give at least a kind and an id")
    return "/".join(("tenants", check_tenant(tenant), *parts))


def subject_tenant(subj: str) -> str | None:
    parts = subj.split("/")
    return parts[1] if len(parts) >= 4 and parts[0] == "tenants" else None


def subject_group(subj: str) -> str | None:
    """The protection group a subject belongs to (``tenants/t/groups/<g>/...``)."""
    parts = subj.split("/")
    return parts[3] if len(parts) >= 4 and parts[2] == "groups" else None


def format_time(t: datetime) -> str:
    if t.tzinfo is None:
        raise ValueError("usage times must be timezone-aware (UTC)")
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class UsageEvent:
    id: str
    source: str
    tenant: str
    subject: str
    time: datetime
    meter: Meter
    quantity: int
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def epoch(self) -> float:
        return self.time.timestamp()

    def to_cloudevent(self) -> dict:
        data: dict = {"meter": self.meter.value, "quantity": self.quantity, "unit": self.meter.spec.unit}
        if self.attributes:
            data["attributes"] = dict(self.attributes)
        return {
            "specversion": SPECVERSION, "type": EVENT_TYPE, "id": self.id, "source": self.source,
            "time": format_time(self.time), "subject": self.subject, "tenant": self.tenant,
            "datacontenttype": "application/json", "data": data,
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_cloudevent(), separators=(",", ":")).encode()


# type -> function turning an older document into the current shape.
UPCASTERS: dict[str, Callable[[dict], dict]] = {}


def _bad(reason: str, message: str) -> InvalidUsageEvent:
    return InvalidUsageEvent(reason, message)


_TEXT_FIELDS = ("id", "source", "tenant", "subject", "time")


@functools.lru_cache(maxsize=65536)
def _tenant_error(tenant: str) -> str | None:
    # cached: the same few tenants are checked for every event
    try:
        check_tenant(tenant)
    except ValueError as err:
        return str(err)
    return None


def parse_event(raw: bytes | str | dict) -> UsageEvent:
    """Validate one CloudEvent; raise :class:`InvalidUsageEvent` naming the problem."""
    eid, source, tenant, subj, t, mname, q, attrs = parse_fields(raw)
    return UsageEvent(eid, source, tenant, subj, datetime.fromtimestamp(t, timezone.utc), _METER_BY_NAME[mname],
                      q, attrs)


def parse_fields(raw: bytes | str | dict) -> tuple:
    """:func:`parse_event` without building objects: ``(id, source, tenant, subject, epoch seconds,
    meter name, quantity, attributes)``. Metering's hot path; same validation, same errors."""
    if isinstance(raw, dict):
        doc = raw
    else:
        if not isinstance(raw, (bytes, str)):  # e.g. a Kafka tombstone (no value)
            raise _bad("malformed", "usage record has no value; send one CloudEvent per record")
        if len(raw) > MAX_EVENT_BYTES:
            raise _bad("too large", f"usage event is {len(raw)} bytes; the limit is {MAX_EVENT_BYTES}")
        try:
            doc = orjson.loads(raw)  # ~10x faster than json here, and it is the hot path of metering
        except (ValueError, UnicodeDecodeError) as err:
            raise _bad("malformed", f"usage event is not JSON: {err}") from None
        if not isinstance(doc, dict):
            raise _bad("malformed", "usage event must be a JSON object (CloudEvents structured mode)")
    etype = doc.get("type")
    if etype in UPCASTERS:
        doc = UPCASTERS[etype](doc)
        etype = doc.get("type")
    if doc.get("specversion") != SPECVERSION:
        raise _bad("missing field", f"usage event needs specversion {SPECVERSION!r}")
    if etype != EVENT_TYPE:
        raise _bad("unknown type", f"usage event type {etype!r} is unknown; expected {EVENT_TYPE!r}")
    vals = [doc.get(n) for n in _TEXT_FIELDS]
    for name, v in zip(_TEXT_FIELDS, vals):
        if type(v) is not str or not v:
            raise _bad("missing field", f"usage event lacks {name!r} (a non-empty string); see shared/usage.py")
    eid, source, tenant, subj, ts = vals
    data = doc.get("data")
    if not isinstance(data, dict):
        raise _bad("missing field", "usage event lacks 'data' (an object with meter and quantity)")
    found = _SPEC_BY_NAME.get(data.get("meter"))  # type: ignore[arg-type]
    if found is None:
        raise _bad("unknown meter", f"meter {data.get('meter')!r} is unknown; known: {sorted(_METER_BY_NAME)}")
    meter, spec = found
    if spec.kind is Kind.LICENSE:
        raise _bad("reserved meter", f"meter {meter.value!r} is computed by metering and cannot be emitted")
    q = data.get("quantity")
    if q is None:
        raise _bad("missing field", "usage event lacks data.quantity")
    if type(q) is not int:  # bool is an int subclass: refused too
        raise _bad("bad quantity", f"quantity {q!r} must be an integer number of {spec.unit}s")
    if q < 0:
        raise _bad("negative quantity", f"quantity {q} is negative; usage is never negative")
    if q > MAX_QUANTITY:
        raise _bad("bad quantity", f"quantity {q} is larger than {MAX_QUANTITY}")
    unit = data.get("unit", spec.unit)
    if unit != spec.unit:
        raise _bad("wrong unit", f"meter {meter.value} counts {spec.unit}s, not {unit!r}")
    err = _tenant_error(tenant)
    if err is not None:
        raise _bad("bad tenant", err)
    if not (subj.startswith("tenants/") and subject_tenant(subj) == tenant):
        raise _bad("wrong tenant", f"subject {subj!r} does not belong to tenant {tenant!r}: "
                                   f"subjects start with 'tenants/{tenant}/<kind>/<id>'")
    try:
        t = datetime.fromisoformat(ts)
    except ValueError:
        raise _bad("bad time", f"time {ts!r} is not RFC 3339") from None
    if t.tzinfo is None:
        raise _bad("bad time", f"time {ts!r} has no timezone; use UTC ('Z')")
    attrs = data.get("attributes") or _NO_ATTRS
    if attrs is not _NO_ATTRS:
        if not isinstance(attrs, dict) or not all(isinstance(v, str) for v in attrs.values()):
            raise _bad("bad attributes", "data.attributes must be an object of strings")
    for dim in spec.dimensions:
        if not attrs.get(dim):
            raise _bad("missing field", f"meter {meter.value} needs data.attributes.{dim}")
    return eid, source, tenant, subj, t.timestamp(), meter.value, q, attrs


def new_event(source: str, tenant: str, subj: str, meter: Meter | str, quantity: int,
              time: datetime | None = None, id: str | None = None, **attributes: str) -> UsageEvent:
    m = Meter(meter)
    return UsageEvent(id or str(uuid.uuid4()), source, tenant, subj, time or datetime.now(timezone.utc),
                      m, quantity, attributes)


class MemoryEmitter:
    """Collects events in memory (unit tests); validates them like metering will."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.events: list[UsageEvent] = []

    def emit(self, tenant: str, subj: str, meter: Meter | str, quantity: int, time: datetime | None = None,
             id: str | None = None, **attributes: str) -> UsageEvent:
        ev = new_event(self.source, tenant, subj, meter, quantity, time, id, **attributes)
        parse_event(ev.to_json())  # fail at the emitter, where the bug is, not later in the DLQ
        self.events.append(ev)
        return ev

    def flush(self, timeout: float = 10.0) -> None:
        return None


class UsageEmitter(MemoryEmitter):
    """Emits to Kafka (idempotent producer, acks=all), keyed by tenant.

    ``emit`` queues; ``flush`` waits until Kafka acknowledged everything and
    raises if anything was refused. Retrying an event with the same ``id`` is
    safe: metering counts it once.
    """

    def __init__(self, bootstrap: str, source: str, topic: str = USAGE_TOPIC) -> None:
        super().__init__(source)
        from confluent_kafka import Producer

        from shared.bus.kafka import producer_config

        self.topic = topic
        self._p = Producer(producer_config(bootstrap, **{"linger.ms": 5}))
        self._errors: list[str] = []

    def _cb(self, err, _msg) -> None:
        if err is not None:
            self._errors.append(str(err))

    def emit(self, tenant: str, subj: str, meter: Meter | str, quantity: int, time: datetime | None = None,
             id: str | None = None, **attributes: str) -> UsageEvent:
        ev = new_event(self.source, tenant, subj, meter, quantity, time, id, **attributes)
        parse_event(ev.to_json())
        self.emit_raw(tenant, ev.to_json())
        return ev

    def emit_raw(self, tenant: str, payload: bytes) -> None:
        """Produce bytes as they are (tests and benches use it to send bad events)."""
        while True:
            try:
                self._p.produce(self.topic, value=payload, key=tenant.encode(), on_delivery=self._cb)
                break
            except BufferError:
                self._p.poll(0.05)
        self._p.poll(0)

    def flush(self, timeout: float = 30.0) -> None:
        from shared.bus.kafka import BusUnavailable

        left = self._p.flush(timeout)
        if left:
            raise BusUnavailable(f"{left} usage events not acknowledged by Kafka within {timeout:.0f}s; "
                                 "check DIALBACK_KAFKA_BOOTSTRAP and retry (ids make retries safe)")
        if self._errors:
            errs, self._errors = self._errors, []
            raise BusUnavailable(f"Kafka refused {len(errs)} usage events, first: {errs[0]}")
