"""Storage meters on ``dialback.usage``: hourly gauges per group and protected volume-seconds per volume.

Emitted by the retention job (``DIALBACK_RETENTION_USAGE=true``), per tenant:

* ``storage.logical_bytes`` and ``storage.stored_bytes``: one gauge sample per
  group per UTC hour (subject ``tenants/<t>/groups/<g>``), at the job's first
  run in that hour;
* ``protection.volume_seconds``: for every *complete* hour a volume of a
  group's manifest was protected, the seconds of that hour it was protected
  (3600; fewer in the hour protection began), subject
  ``tenants/<t>/groups/<g>/volumes/<v>``.

Event ids are deterministic, ``uuid5(tenant | subject | meter | hour)``, so a
re-run, a second job in the same hour or a restart re-sends the same ids and
metering counts each once. After a restart the sampler catches up the last
``catchup_hours`` complete hours (ids make the overlap harmless); hours
missed beyond that (a longer outage) are not emitted — a known gap.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from shared import bases as B
from shared import keys
from shared.journal import JournalError, TimelineEntry
from shared.objectstore import ObjectNotFound, ObjectStore
from shared.usage import Meter, subject
from services.retention.accounting import SegmentCache, TenantUsage, measure_tenant

HOUR_NS = 3600 * 10**9
SOURCE = "/dialback/retention"
_NS = uuid.UUID("6f1d3a52-4a39-4c1e-9d0b-7f3b8f0d1a01")


def event_id(tenant: str, subj: str, meter: Meter, hour: int) -> str:
    """The same (tenant, subject, meter, hour) always gets the same id: metering counts it once."""
    return str(uuid.uuid5(_NS, f"{tenant}|{subj}|{meter.value}|{hour}"))


def _time(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // 10**9, timezone.utc)


@dataclass
class UsageSampler:
    """Emits a tenant's storage meters through an emitter (``UsageEmitter`` or ``MemoryEmitter``)."""

    emitter: object
    catchup_hours: int = 3
    cache: SegmentCache = field(default_factory=SegmentCache)
    _sampled: dict[str, int] = field(default_factory=dict)   # bucket -> last hour gauges were sent
    _seconds: dict[str, int] = field(default_factory=dict)   # bucket -> last complete hour volume-seconds were sent

    def run(self, store: ObjectStore, bucket: str, tenant: str, now_ns: int) -> TenantUsage | None:
        """Emit what is due at ``now_ns`` and flush; returns the measurement when gauges were sampled."""
        hour = now_ns // HOUR_NS
        usage = None
        if self._sampled.get(bucket) != hour:
            usage = measure_tenant(store, bucket, self.cache)
            for g, gu in usage.groups.items():
                subj = subject(tenant, "groups", g)
                for meter, q in ((Meter.LOGICAL_BYTES, gu.logical_bytes), (Meter.STORED_BYTES, gu.stored_bytes)):
                    self.emitter.emit(tenant, subj, meter, q, _time(now_ns), event_id(tenant, subj, meter, hour))
        last_done = hour - 1
        first = max(self._seconds.get(bucket, last_done - self.catchup_hours) + 1, last_done - self.catchup_hours + 1)
        if first <= last_done:
            self._volume_seconds(store, bucket, tenant, first, last_done, usage)
        self.emitter.flush()
        self._sampled[bucket] = hour
        self._seconds[bucket] = max(self._seconds.get(bucket, last_done), last_done)
        return usage

    def _volume_seconds(self, store: ObjectStore, bucket: str, tenant: str, first: int, last: int,
                        usage: TenantUsage | None) -> None:
        usage = usage or measure_tenant(store, bucket, self.cache)
        for g, gu in usage.groups.items():
            since = protected_since(store, bucket, g)
            if since is None:
                continue
            for v in sorted(gu.volumes):
                subj = subject(tenant, "groups", g, "volumes", v)
                for h in range(first, last + 1):
                    start, end = h * HOUR_NS, (h + 1) * HOUR_NS
                    secs = (end - max(start, since)) // 10**9
                    if secs > 0:
                        m = Meter.PROTECTED_VOLUME_SECONDS
                        self.emitter.emit(tenant, subj, m, secs, _time(start), event_id(tenant, subj, m, h))


def protected_since(store: ObjectStore, bucket: str, group: str) -> int | None:
    """The oldest time the group can be recovered to (oldest base, else the journal's first record)."""
    seqs = B.list_base_sequences(store, bucket, group)
    times = []
    if seqs:
        try:
            times.append(B.read_base(store, bucket, group, seqs[0]).timestamp_ns)
        except (B.BaseError, ObjectNotFound):
            pass
    for info in store.list(bucket, keys.timeline_prefix(group)):  # the oldest entry is listed first
        try:
            times.append(TimelineEntry.from_json(store.get(bucket, info.key)).first_ts)
            break
        except (JournalError, ObjectNotFound):
            continue
    return min(times) if times else None
