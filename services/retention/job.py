"""The retention job: rebuild lost manifests, rollup, then GC for every group of a tenant, one run at a time.

Called periodically by the retention app (``DIALBACK_RETENTION_ROLLUP_INTERVAL``)
and directly by tests and the CLI with an injected clock. The policy is read
from the store on every run, so a change applies without a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from shared.bases import DEFAULT_CHUNK_SIZE
from shared.errors import DialbackError
from shared.objectstore import ObjectStore
from services.retention.gc import DEFAULT_CHUNK_GRACE_S, GcStats, all_groups, gc_tenant, list_groups
from services.retention.accounting import TenantUsage
from services.retention.manifests import rebuild_missing
from services.retention.rollup import RollupStats, rollup_group
from services.retention.usage_events import UsageSampler

log = logging.getLogger(__name__)
_locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
_locks_guard = threading.Lock()


@dataclass
class JobResult:
    rollups: dict[str, RollupStats] = field(default_factory=dict)
    gc: GcStats | None = None
    usage: TenantUsage | None = None   # when the usage sampler measured the tenant this run
    usage_error: str | None = None     # emitting usage failed (rollup and GC still ran); retried next run
    manifests_rebuilt: list[str] = field(default_factory=list)   # groups whose lost manifest was rewritten
    manifests_missing: list[str] = field(default_factory=list)   # lost and not rebuildable (no base yet)


def tenant_lock(bucket: str) -> threading.Lock:
    with _locks_guard:
        return _locks[bucket]


def run_tenant(store: ObjectStore, bucket: str, now_ns: int | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE,
               gc: bool = True, lease_now_ns: int | None = None, usage: UsageSampler | None = None,
               tenant: str | None = None, chunk_grace_s: float = DEFAULT_CHUNK_GRACE_S) -> JobResult:
    """Rebuild lost manifests, rollup every group, then (unless ``gc`` is False) one GC pass over the bucket
    (sparing unreferenced chunks younger than ``chunk_grace_s``), then (with ``usage`` and ``tenant``) the
    storage meters due at ``now_ns`` (services/retention/usage_events.py)."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    res = JobResult()
    with tenant_lock(bucket):
        res.manifests_rebuilt, res.manifests_missing = rebuild_missing(store, bucket, all_groups(store, bucket))
        groups = list_groups(store, bucket)
        for g in groups:
            t0 = time.monotonic()
            res.rollups[g] = rollup_group(store, bucket, g, now_ns, chunk_size)
            took = time.monotonic() - t0
            if chunk_grace_s and took > chunk_grace_s / 2:
                # GC's chunk grace is what keeps another process's GC off a rollup's fresh chunks.
                log.warning("%s: rollup of group %s took %.0f s, over half the chunk grace (%.0f s): raise "
                            "DIALBACK_RETENTION_CHUNK_GRACE", bucket, g, took, chunk_grace_s)
        if gc:
            res.gc = gc_tenant(store, bucket, now_ns, lease_now_ns, groups, chunk_grace_s)
        if usage is not None and tenant is not None:
            try:
                res.usage = usage.run(store, bucket, tenant, now_ns)
            except DialbackError as err:
                res.usage_error = str(err)
    return res
