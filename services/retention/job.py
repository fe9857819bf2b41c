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
from shared.objectstore import ObjectStore
from services.retention.gc import GcStats, gc_tenant, list_groups
from services.retention.rollup import RollupStats, rollup_group

_locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
_locks_guard = threading.Lock()


@dataclass
class JobResult:
    rollups: dict[str, RollupStats] = field(default_factory=dict)
    gc: GcStats | None = None


def tenant_lock(bucket: str) -> threading.Lock:
    with _locks_guard:
        return _locks[bucket]


def run_tenant(store: ObjectStore, bucket: str, now_ns: int | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE,
               gc: bool = True, lease_now_ns: int | None = None) -> JobResult:
    """Rollup every group, then (unless ``gc`` is False) one GC pass over the bucket."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    res = JobResult()
    with tenant_lock(bucket):
        groups = list_groups(store, bucket)
        for g in groups:
            res.rollups[g] = rollup_group(store, bucket, g, now_ns, chunk_size)
        if gc:
            res.gc = gc_tenant(store, bucket, now_ns, lease_now_ns, groups)
    return res
