"""Bytes of request bodies ingest holds right now, per tenant and in all.

Every body is counted from before its first byte is buffered until its answer
(the buffer lives that long: it is produced to Kafka from it). A body with a
Content-Length reserves all of it before a buffer is allocated; a chunked body
reserves each chunk as it arrives. A reservation that would take a tenant past
DIALBACK_INGEST_MAX_INFLIGHT_BYTES_PER_TENANT, or ingest past
DIALBACK_INGEST_MAX_INFLIGHT_BYTES, is refused with Overloaded (503 with
Retry-After; nothing was acknowledged, the agent keeps its spool and retries).
So the memory held for bodies is bounded whatever the number of connections,
and one tenant can fill only its own share.

Used from the one event loop of the app: no lock.
"""

from __future__ import annotations

from services.ingest.errors import Overloaded


class InflightBytes:
    def __init__(self, total: int, per_tenant: int) -> None:
        self.total_cap, self.tenant_cap = total, per_tenant
        self.total = 0
        self.by_tenant: dict[str, int] = {}

    def hold(self, tenant: str) -> "Hold":
        return Hold(self, tenant)

    def _take(self, tenant: str, n: int) -> None:
        mine = self.by_tenant.get(tenant, 0)
        if mine + n > self.tenant_cap:
            raise Overloaded(f"ingest already holds {mine} bytes of bodies of tenant {tenant!r} (limit "
                             f"{self.tenant_cap}); send fewer bodies at once")
        if self.total + n > self.total_cap:
            raise Overloaded("ingest is holding as many body bytes as it may (all tenants); it is busy")
        self.by_tenant[tenant] = mine + n
        self.total += n

    def _give(self, tenant: str, n: int) -> None:
        left = self.by_tenant[tenant] - n
        if left:
            self.by_tenant[tenant] = left
        else:
            del self.by_tenant[tenant]
        self.total -= n


class Hold:
    """One body's reservation; grows as the body arrives, released whole on exit."""

    def __init__(self, pool: InflightBytes, tenant: str) -> None:
        self.pool, self.tenant, self.bytes = pool, tenant, 0

    def grow(self, n: int) -> None:
        """Reserve ``n`` more bytes, or raise Overloaded (reserving nothing)."""
        if n:
            self.pool._take(self.tenant, n)
            self.bytes += n

    def release(self) -> None:
        if self.bytes:
            self.pool._give(self.tenant, self.bytes)
            self.bytes = 0

    def __enter__(self) -> "Hold":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
