"""The recovery-backed image source: raw images of a recovery point, synthesized from MinIO.

`validate` reads only the group's manifest and timeline (the recovery
planner), so an impossible point -- unknown group, volume or bookmark, a
moment before the initial sync or after the latest durable write -- is
refused before any cloud call, and so is a point inside an inconsistency
window (shared/consistency.py). `resolve` turns "latest" (the newest
consistent point) into a concrete `seq:N`; the engine records that once per operation so a resumed operation
boots the same point. `materialize` builds the image with the recovery
service's synthesizer (base + journal, under a GC lease) into the work dir;
the engine calls `release` once Glance holds the bytes.
"""

from __future__ import annotations

import re
from pathlib import Path

from services.burst import points
from services.burst.errors import UnknownPoint
from services.recovery.errors import RecoveryError
from services.recovery.planner import At, Point, load_group
from services.recovery.service import Plan, Recovery
from shared.objectstore import ObjectStore
from shared.tenancy import check_tenant, check_volume, tenant_bucket

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class RecoveryImageSource:
    def __init__(self, store: ObjectStore, work_dir: Path, bucket_prefix: str = "dialback-",
                 prefetch: int = 4) -> None:
        self.work_dir = Path(work_dir)
        self.recovery = Recovery(store, bucket_prefix, self.work_dir, prefetch)

    def _plan(self, tenant: str, group: str, volume: str, point: str) -> Plan:
        check_tenant(tenant)
        at = points.parse(point)
        try:
            if at is None:
                latest = self._latest(tenant, group)
                at = At.of(sequence=latest.sequence)
            return self.recovery.plan(tenant, check_volume(group), check_volume(volume), at)
        except RecoveryError as err:
            raise UnknownPoint(f"cannot boot {group}/{volume} at {point!r}: {err}") from err

    def _latest(self, tenant: str, group: str) -> Point:
        bucket = tenant_bucket(tenant, self.recovery.bucket_prefix)
        j = load_group(self.recovery.store, bucket, check_volume(group))
        if j.latest is None or j.earliest is None:
            raise UnknownPoint(f"group {group!r} has no recoverable point yet: the initial sync has not "
                               "completed; wait for it, then retry")
        # "latest" = the newest consistent point (not one inside an open resync window);
        # none at all: resolving the raw end lets the planner refuse it, naming the window.
        return j.latest_consistent or j.latest

    def validate(self, tenant: str, group: str, volume: str, point: str) -> None:
        self._plan(tenant, group, volume, point)

    def resolve(self, tenant: str, group: str, volume: str, point: str) -> str:
        """A point that names the same bytes forever: "latest" becomes `seq:N`, others stay."""
        if point != points.LATEST:
            return point
        return points.concrete(self._plan(tenant, group, volume, point).point.sequence)

    def materialize(self, tenant: str, group: str, volume: str, point: str) -> Path:
        plan = self._plan(tenant, group, volume, point)
        out = (self.work_dir / tenant / group / volume /
               f"{_UNSAFE.sub('_', point)}-seq{plan.point.sequence}.raw")
        out.parent.mkdir(parents=True, exist_ok=True)
        self.recovery.to_files(plan, {volume: out})  # atomic: a crash leaves no half image under this name
        return out

    def release(self, path: Path) -> None:
        Path(path).unlink(missing_ok=True)
