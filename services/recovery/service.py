"""Recovery use cases, shared by the HTTP API and the CLI's --direct mode.

Order in every use case: check the request's shape, read manifest and
timeline, resolve and range-check the point, and only then read segments
and write an image.

A synthesis holds a lease (shared/leases.py) on the base and journal it
reads, taken before a second planning pass and renewed every TTL/3 while
it reads (a LeaseKeeper thread), so a concurrent GC never removes what it
reads, however long the read takes. A synthesis that fails after its lease
lapsed (not renewed for TTL/2) says so (LeaseLapsed).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from services.recovery.errors import BadRequest, NotFound, OutOfRange
from services.recovery.listing import TimelineListing
from services.recovery.planner import At, GroupJournal, Point, load_group
from shared import keys, leases
from shared.broken import read_mark
from shared.bases import Base
from shared.journal import TimelineCache
from services.recovery.synth import Progress, SynthStats, synthesize
from services.recovery.usage import ImageUsage
from services.recovery.upload import check_target_key, upload_file
from shared.objectstore import ObjectStore
from shared.tenancy import check_volume, tenant_bucket


@dataclass
class Plan:
    journal: GroupJournal
    point: Point
    volumes: list[str]
    base: Base | None = None
    tenant: str = ""

    @property
    def base_seq(self) -> int:
        return self.base.sequence if self.base is not None else 0


@dataclass
class Result:
    group: str
    point: Point
    volumes: list[dict] = field(default_factory=list)
    stats: SynthStats | None = None

    def to_dict(self) -> dict:
        return {"group": self.group, "sequence": self.point.sequence, "timestamp_ns": self.point.timestamp_ns,
                "volumes": self.volumes}


class Recovery:
    def __init__(self, store: ObjectStore, bucket_prefix: str = "dialback-", work_dir: Path | None = None,
                 prefetch: int = 4, lease_ttl_s: float = 3600.0, usage: ImageUsage | None = None) -> None:
        self.lease_ttl_s = lease_ttl_s
        self.usage = usage or ImageUsage(None)
        self.store = store
        self.bucket_prefix = bucket_prefix
        self.work_dir = Path(work_dir) if work_dir else Path(tempfile.gettempdir())
        self.prefetch = prefetch
        self.timeline_cache = TimelineCache()
        self.timeline_listing = TimelineListing()

    def _group(self, tenant: str, group: str, incremental: bool = False) -> GroupJournal:
        """``incremental``: list the timeline incrementally (``points`` only; plans list in full)."""
        try:
            check_volume(group)
        except ValueError as err:
            raise BadRequest(str(err)) from err
        return load_group(self.store, tenant_bucket(tenant, self.bucket_prefix), group, self.timeline_cache,
                          self.timeline_listing if incremental else None)

    def verify(self, tenant: str, group: str) -> dict:
        """Read and check everything the group's retained points need (docs/storage.md, "Verify")."""
        from services.recovery.verify import verify_tenant

        try:
            check_volume(group)
        except ValueError as err:
            raise BadRequest(str(err)) from err
        bucket = tenant_bucket(tenant, self.bucket_prefix)
        # Only existence is checked here: a damaged manifest or timeline is what the report is for.
        if not self.store.bucket_exists(bucket) or not self.store.exists(bucket, keys.manifest_key(group)):
            raise NotFound(f"group {group!r} not found (no manifest: is it registered with ingest?)")
        return verify_tenant(self.store, bucket, group).to_dict()

    def points(self, tenant: str, group: str) -> dict:
        j = self._group(tenant, group, incremental=True)
        e, l, c = j.earliest, j.latest, j.latest_consistent
        recoverable = e is not None and l is not None
        return {
            "group": group,
            "volumes": [{"volume": v, "size": s} for v, s in sorted(j.volumes.items())],
            "earliest": {"sequence": e.sequence, "timestamp_ns": e.timestamp_ns} if recoverable else None,
            # "latest" is the newest consistent point; retained_through may lie inside an open window.
            "latest": {"sequence": c.sequence, "timestamp_ns": c.timestamp_ns} if recoverable and c else None,
            "retained_through": l.sequence if l else 0,
            # Points strictly inside a window are refused (409); both ends are consistent points.
            "windows": [w.to_dict() for w in j.windows],
            # Older points kept by the retention policy (bases); each is recoverable exactly at its
            # sequence or at one of its instants.
            "retained": [{"sequence": b.sequence, "timestamp_ns": b.timestamp_ns, "points_ns": list(b.points_ns)}
                         for b in j.retained()],
            "bookmarks": [{"name": b.name, "sequence": b.sequence, "timestamp_ns": b.timestamp_ns}
                          for b in j.bookmarks],
            # Set while the journal lacks sequence ``expected`` (shared.broken): points after it are
            # missing until the agent's resend or resync is durable; ``latest`` stays before the gap.
            "broken": read_mark(self.store, j.bucket, group),
        }

    def plan(self, tenant: str, group: str, volume: str | None, at: At) -> Plan:
        j = self._group(tenant, group)
        volumes = j.check_volumes(volume)
        point = j.resolve(at, self.store)
        return Plan(j, point, volumes, j.base_for(point), tenant)

    def leased(self, plan: Plan, holder: str = "recovery", ttl_s: float | None = None) -> tuple[leases.Lease, Plan]:
        """Lease the plan's base and journal, then plan again so GC cannot have removed what we read.
        The lease renews itself until released (``lease.keeper`` says whether it lapsed)."""
        for _ in range(3):
            lease = leases.acquire(self.store, plan.journal.bucket, plan.journal.group, plan.base_seq,
                                   plan.base_seq, ttl_s or self.lease_ttl_s, holder=holder)
            lease.keep_alive()  # renewed every TTL/3 from now until released: planning and reading may be long
            try:
                j = load_group(self.store, plan.journal.bucket, plan.journal.group, self.timeline_cache)
                point = j.resolve(At.of(sequence=plan.point.sequence), self.store)
                again = Plan(j, Point(point.sequence, plan.point.timestamp_ns), plan.volumes, j.base_for(point),
                             plan.tenant)
            except BaseException:
                lease.release()
                raise
            if again.base_seq == plan.base_seq:
                return lease, again
            lease.release()
            plan = again
        raise OutOfRange(f"group {plan.journal.group!r} changed under three attempts to plan "
                         f"{plan.point.sequence} (garbage collection running?); retry")

    _leased = leased  # the name used before instant access needed it outside this class

    def _synth(self, plan: Plan, outputs: dict[str, Path], progress: Progress | None) -> SynthStats:
        lease, plan = self.leased(plan)
        with lease:  # renewed every TTL/3 while reading: a synthesis may take longer than one TTL
            keeper = lease.keep_alive()
            try:
                stats = synthesize(self.store, plan.journal, plan.point, outputs, self.prefetch, progress,
                                   plan.base)
            except Exception as err:
                if keeper.lapsed:  # what went missing is what GC could take once the lease lapsed
                    raise leases.LeaseLapsed(keeper.lapsed_msg) from err
                raise
            # Completed: every byte came from objects checked on read (chunk ids, record CRCs), so a
            # lapse after the last read cannot have made it wrong.
        for v in outputs:
            self.usage.image_built(plan.tenant, plan.journal.group, v, plan.point.sequence, plan.journal.volumes[v])
        return stats

    def to_files(self, plan: Plan, outputs: dict[str, Path], progress: Progress | None = None) -> Result:
        """Write images to local paths atomically (temporary name, then rename)."""
        tmp = {v: p.with_name(f".{p.name}.partial") for v, p in outputs.items()}
        try:
            stats = self._synth(plan, tmp, progress)
            for v, p in outputs.items():
                os.replace(tmp[v], p)
        finally:
            for t in tmp.values():
                t.unlink(missing_ok=True)
        res = Result(plan.journal.group, plan.point, stats=stats)
        res.volumes = [{"volume": v, "path": str(p), "size": plan.journal.volumes[v]} for v, p in outputs.items()]
        return res

    def to_temp(self, plan: Plan, progress: Progress | None = None) -> tuple[dict[str, Path], SynthStats]:
        """Images in the work dir; the caller deletes them."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        outputs = {v: Path(tempfile.mkstemp(prefix=f"{v}-", suffix=".img", dir=self.work_dir)[1])
                   for v in plan.volumes}
        try:
            stats = self._synth(plan, outputs, progress)
        except BaseException:
            for p in outputs.values():
                p.unlink(missing_ok=True)
            raise
        return outputs, stats

    def to_objects(self, plan: Plan, key_prefix: str | None = None, digest: bool = False,
                   progress: Progress | None = None) -> Result:
        """Images as objects in the tenant's bucket: ``<prefix><volume>.img``."""
        prefix = key_prefix if key_prefix is not None else \
            keys.recovery_prefix(plan.journal.group, plan.point.sequence)
        # A key not ending in "/" names the object itself (one volume only).
        exact = key_prefix is not None and not key_prefix.endswith("/") and len(plan.volumes) == 1
        targets = {v: check_target_key(prefix if exact else f"{prefix}{v}.img") for v in plan.volumes}
        paths, stats = self.to_temp(plan, progress)
        res = Result(plan.journal.group, plan.point, stats=stats)
        try:
            for v, path in paths.items():
                upload_file(self.store, plan.journal.bucket, targets[v], path)
                item = {"volume": v, "bucket": plan.journal.bucket, "key": targets[v], "size": plan.journal.volumes[v]}
                if digest:
                    item["sha256"] = file_sha256(path)
                res.volumes.append(item)
        finally:
            for p in paths.values():
                p.unlink(missing_ok=True)
        return res


def file_sha256(path: Path, chunk: int = 8 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
