"""Purge: delete a group's data once protection has been off for longer than the grace period.

Deleting means every object under ``groups/<group>/`` in the tenant's bucket,
through the ObjectStore interface. The bytes deleted are metered
(``data.purged_bytes``). Order per chunk of keys: emit the usage event (its id
is derived from the chunk, so a rerun emits the same id and metering counts
it once), wait for Kafka's acknowledgement, then delete. One event per object
(id from tenant, group, switch-off time, key and size): chunk-level ids would
change when a crash leaves a chunk half deleted, and the rest would be
metered twice. A crash in between re-meters (same ids, counted once) and
re-deletes only what is left. Switching
protection back on before the grace period ends cancels the purge.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from shared.keys import group_prefix
from shared.objectstore import ObjectStore
from shared.tenancy import tenant_bucket
from shared.usage import Feature, Meter, subject
from services.metering import metrics
from shared.licences import LicenceBook

log = logging.getLogger(__name__)
PURGE_NAMESPACE = uuid.UUID("0d7e6a52-3c5b-5b8e-8f0e-6b8a2f4c9e31")
CHUNK = 500


@dataclass(frozen=True)
class Purged:
    tenant: str
    group: str
    objects: int
    bytes: int


class PurgeJob:
    def __init__(self, store: ObjectStore, licences: LicenceBook, emitter, grace_s: float,
                 clock: Callable[[], float] = time.time, bucket_prefix: str = "dialback-") -> None:
        self.store, self.licences, self.emitter = store, licences, emitter
        self.grace_s, self.clock, self.bucket_prefix = grace_s, clock, bucket_prefix

    def due(self) -> list[tuple[str, str | None, float]]:
        """(tenant, group or None for all groups, switched off at) whose grace period is over."""
        now = self.clock()
        out = []
        for lic in list(self.licences.licences.values()):
            off = lic.switched_off_at
            if lic.feature is Feature.PROTECTION and off is not None and now >= off + self.grace_s:
                out.append((lic.tenant, lic.group, off))
        return sorted(out, key=lambda d: (d[0], d[1] or ""))

    def run_once(self) -> list[Purged]:
        done = []
        for tenant, group, off in self.due():
            bucket = tenant_bucket(tenant, self.bucket_prefix)
            if not self.store.bucket_exists(bucket):
                continue
            prefix = group_prefix(group) if group else "groups/"
            by_group: dict[str, list] = {}
            for info in self.store.list(bucket, prefix):
                by_group.setdefault(info.key.split("/")[1], []).append(info)
            for g, infos in sorted(by_group.items()):
                done.append(self._purge_group(tenant, bucket, g, infos, off))
        return done

    def _purge_group(self, tenant: str, bucket: str, group: str, infos: list, off: float) -> Purged:
        total = 0
        for i in range(0, len(infos), CHUNK):
            chunk = infos[i:i + CHUNK]
            size = sum(o.size for o in chunk)
            # the moment the purge fell due, not "now": a rerun must give the same event the same
            # time, because metering deduplicates ids within the event's hour
            when = datetime.fromtimestamp(off + self.grace_s, timezone.utc)
            subj = subject(tenant, "groups", group)
            for o in chunk:
                eid = str(uuid.uuid5(PURGE_NAMESPACE, f"{tenant}|{group}|{off}|{o.key}|{o.size}"))
                self.emitter.emit(tenant, subj, Meter.PURGED_BYTES, o.size, time=when, id=eid)
            self.emitter.flush()  # metered before deleted: never a silent deletion
            for o in chunk:
                self.store.delete(bucket, o.key)
            total += size
            metrics.PURGED.inc(size)
        log.info("purged %d objects (%d bytes) of %s/%s: protection off since %s, grace %.0fs over",
                 len(infos), total, tenant, group, datetime.fromtimestamp(off, timezone.utc), self.grace_s)
        return Purged(tenant, group, len(infos), total)
