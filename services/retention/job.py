"""The retention job: rollup then GC for every group of a tenant, one run at a time per tenant.

Called periodically by the retention app (``DIALBACK_RETENTION_ROLLUP_INTERVAL``)
and directly by tests and the CLI with an injected clock. The policy is read
from the store on every run, so a change applies without a restart.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from shared.bases import DEFAULT_CHUNK_SIZE
from shared.errors import DialbackError
from shared.objectstore import ObjectStore
from services.retention.gc import GcStats, gc_tenant, list_groups
from services.retention.accounting import TenantUsage
from services.retention.rollup import RollupStats, rollup_group
from services.retention.usage_events import UsageSampler

_locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
_locks_guard = threading.Lock()


@dataclass
class JobResult:
    rollups: dict[str, RollupStats] = field(default_factory=dict)
    gc: GcStats | None = None
    usage: TenantUsage | None = None   # when the usage sampler measured the tenant this run
    usage_error: str | None = None     # emitting usage failed (rollup and GC still ran); retried next run


def tenant_lock(bucket: str) -> threading.Lock:
    with _locks_guard:
        return _locks[bucket]


def run_tenant(store: ObjectStore, bucket: str, now_ns: int | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE,
               gc: bool = True, lease_now_ns: int | None = None, usage: UsageSampler | None = None,
               tenant: str | None = None) -> JobResult:
    """Rollup every group, then (unless ``gc`` is False) one GC pass over the bucket, then (with ``usage``
    and ``tenant``) the storage meters due at ``now_ns`` (services/retention/usage_events.py)."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    res = JobResult()
    with tenant_lock(bucket):
        groups = list_groups(store, bucket)
        for g in groups:
            res.rollups[g] = rollup_group(store, bucket, g, now_ns, chunk_size)
        if gc:
            res.gc = gc_tenant(store, bucket, now_ns, lease_now_ns, groups)
        if usage is not None and tenant is not None:
            try:
                res.usage = usage.run(store, bucket, tenant, now_ns)
            except DialbackError as err:
                res.usage_error = str(err)
    return res
