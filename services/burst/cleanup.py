"""Remove everything an operation made: found by its tags, deleted in dependency order.

Usage is billed before servers go. Cleanup ends only when a fresh listing by
tag comes back empty, so "cleaned" means nothing tagged is left.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.burst.errors import ProvisionFailed
from services.burst.machine import OperationState
from services.burst.model import Kind
from services.burst.provider.base import DELETE_ORDER

if TYPE_CHECKING:
    from services.burst.engine import Engine

ATTEMPTS = 4


def cleanup(engine: "Engine", st: OperationState) -> OperationState:
    now = engine.clock()
    for name, rec in st.live_servers().items():
        if rec["status"] == "ACTIVE":
            st = engine.bill(st, name, now)
    tags = engine.tags(st)
    for _ in range(ATTEMPTS):
        left = engine.provider.list_tagged(tags)
        if not left:
            break
        for kind in DELETE_ORDER:
            for res in (r for r in left if r.kind == kind):
                engine.provider.delete(res)
                st = engine.append(st, "ResourceDeleted", kind=res.kind, id=res.id, name=res.name)
    else:
        left = engine.provider.list_tagged(tags)
        if left:
            raise ProvisionFailed(f"cleanup of {st.id} left {len(left)} tagged resources: "
                                  f"{', '.join(f'{r.kind} {r.id}' for r in left[:5])}; it will retry")
    if st.spec.kind is Kind.DRTEST and st.requested_at is not None and any(
            s.get("active_at") for s in st.servers.values()):
        engine.usage.drtest_seconds(st.tenant, st.id, st.requested_at, now)
    final = "RolledBack" if st.status == "rolling_back" else "OperationCleaned"
    return engine.append(st, final)
