"""Open instant-access exports of the recovery service: create, list, close; leases renewed meanwhile.

An export = one NBD server on the configured host (127.0.0.1 by default; port
0: a free one) serving one volume at one point, read-only or through a
throwaway overlay, under a random export name that is its secret (returned
once, by ``create``; the server lists nothing), and with mutual TLS when the
registry has a TLS context. It holds a
lease (shared/leases.py) from before its map is built until it is closed,
renewed every third of the TTL by its own LeaseKeeper thread (sooner again
after a failed renewal), map building included. An export whose lease
could not be renewed for half its TTL *fails*: every NBD request gets EIO
with a message saying the lease lapsed (guard.py), the listing shows
``state: failed`` and that message, and the client closes it and creates a
new one; it never serves data GC may delete. A ticker bills
``instant_access.seconds`` at least every ``usage_interval`` seconds.

Order in ``create``: plan (refuses bad points, no side effect), lease and
plan again under it, build the map, start the server. Anything failing after
the lease releases it and removes the overlay file: a refused request leaves
nothing behind.
"""

from __future__ import annotations

import logging
import os
import secrets
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

from agent.nbd.server import NbdServer
from services.recovery.errors import BadRequest, NotFound, RecoveryError
from services.recovery.instant.blockmap import build
from services.recovery.instant.guard import LeaseGuardedBackend
from services.recovery.instant.overlay import OverlayBackend
from services.recovery.instant.reader import PointBackend
from services.recovery.planner import At
from services.recovery.service import Plan, Recovery
from services.recovery.usage import ImageUsage
from shared import leases

log = logging.getLogger(__name__)
MODES = ("read-only", "overlay")


class TooManyExports(RecoveryError):
    status = 503


@dataclass
class Export:
    id: str
    tenant: str
    group: str
    volume: str
    mode: str
    sequence: int
    timestamp_ns: int
    size: int
    host: str
    port: int
    export_name: str = field(repr=False)  # the secret: whoever knows it may read (and write the overlay)
    tls: bool
    created: float
    lease: leases.Lease
    server: NbdServer = field(repr=False)
    backend: object = field(repr=False)
    billed_until: float = 0.0
    map_seconds: float = 0.0
    keeper: leases.LeaseKeeper | None = field(default=None, repr=False)

    @property
    def error(self) -> str | None:
        """Why the export stopped serving (its lease lapsed), or None while it serves."""
        return self.keeper.lapsed_msg if self.keeper is not None and self.keeper.lapsed else None

    @property
    def uri(self) -> str:
        return f"{'nbds' if self.tls else 'nbd'}://{self.host}:{self.port}/{self.export_name}"

    def to_dict(self, reveal: bool = False) -> dict:
        """The export as the API shows it. ``reveal``: include its secret export name and URI, which
        only the answer to the request that created it does. Never a path of the provider's host."""
        out = {"id": self.id, "group": self.group, "volume": self.volume, "mode": self.mode,
               "sequence": self.sequence, "timestamp_ns": self.timestamp_ns, "size": self.size,
               "host": self.host, "port": self.port, "tls": self.tls,
               "created": self.created, "lease": self.lease.id, "map_seconds": round(self.map_seconds, 4),
               "state": "failed" if self.error else "serving", "error": self.error}
        if reveal:
            out["export_name"], out["uri"] = self.export_name, self.uri
        return out


class ExportRegistry:
    def __init__(self, recovery: Recovery, usage: ImageUsage | None = None, host: str = "127.0.0.1",
                 lease_ttl_s: float = 600.0, usage_interval: float = 3600.0, max_exports: int = 16,
                 work_dir: str | None = None, clock: Callable[[], float] = time.time,
                 tls: ssl.SSLContext | None = None) -> None:
        """``host``: where export servers listen. ``tls``: a server context (shared/nbd_tls.py); every
        export then requires NBD_OPT_STARTTLS with a client certificate of its CA."""
        self.rec, self.usage = recovery, usage or recovery.usage
        self.host, self.lease_ttl_s, self.usage_interval = host, lease_ttl_s, usage_interval
        self.tls = tls
        self.max_exports, self.work_dir, self.clock = max_exports, work_dir, clock
        self._exports: dict[str, Export] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._run, name="export-ticker", daemon=True)
            self._ticker.start()

    def close_all(self) -> None:
        self._stop.set()
        with self._lock:
            ids = [(e.tenant, e.id) for e in self._exports.values()]
        for tenant, eid in ids:
            try:
                self.close(tenant, eid)
            except Exception:  # shutdown goes on; the lease expires by itself
                log.exception("closing export %s failed", eid)
        if self._ticker is not None:
            self._ticker.join(10)
            self._ticker = None

    def _run(self) -> None:
        period = max(0.05, min(self.lease_ttl_s / 3, self.usage_interval))
        while not self._stop.wait(period):
            self.tick()

    def tick(self) -> None:
        """Bill the exports open for a whole usage interval (leases renew in their keepers' threads)."""
        with self._lock:
            open_ = list(self._exports.values())
        now = self.clock()
        for e in open_:
            if now - e.billed_until >= self.usage_interval:
                self._bill(e, now)

    def _bill(self, e: Export, now: float) -> None:
        try:
            if self.usage.export_seconds(e.tenant, e.group, e.id, e.billed_until, now):
                e.billed_until = float(int(now))
        except Exception:
            log.exception("billing export %s failed; retried next tick", e.id)

    # -- use cases -----------------------------------------------------------
    def create(self, tenant: str, group: str, volume: str, at: At | None, mode: str) -> Export:
        """Plan and refuse before any side effect; then lease, map, serve."""
        if mode not in MODES:
            raise BadRequest(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if not volume or volume == "all":
            raise BadRequest("an export serves one volume: name it (volume 'all' is for recoveries)")
        plan = self._plan(tenant, group, volume, at)
        self.start()
        with self._lock:
            if len(self._exports) >= self.max_exports:
                raise TooManyExports(f"{self.max_exports} exports are open on this recovery service; "
                                     "stop one (DELETE /v1/groups/{group}/exports/{id}) and retry")
        eid = uuid.uuid4().hex[:16]
        lease, plan = self.rec.leased(plan, holder=f"nbd-export:{eid}", ttl_s=self.lease_ttl_s)
        keeper = lease.keep_alive()  # renewing since it was taken; the guard asks it before every request
        backend = server = None
        try:
            t0 = time.perf_counter()
            bmap = build(self.rec.store, plan.journal, plan.point, volume, plan.base)
            map_s = time.perf_counter() - t0
            backend = PointBackend(self.rec.store, plan.journal.bucket, bmap, name=volume)
            if mode == "overlay":
                if self.work_dir:
                    os.makedirs(self.work_dir, exist_ok=True)
                backend = OverlayBackend(backend, self.work_dir)
            # The export's name is its secret (192 random bits): the server lists nothing and serves only
            # that name, so only the caller this answer goes to can connect (plus TLS when configured).
            secret = secrets.token_urlsafe(24)
            server = NbdServer({secret: LeaseGuardedBackend(backend, keeper)}, host=self.host, port=0,
                               tls=self.tls, listable=False)
            port = server.start_sync()
            now = self.clock()
            exp = Export(eid, tenant, group, volume, mode, plan.point.sequence, plan.point.timestamp_ns,
                         bmap.size, self.host, port, secret, self.tls is not None, now, lease, server, backend,
                         now, map_s, keeper)
            with self._lock:
                self._exports[eid] = exp
        except BaseException:
            if server is not None:
                server.close_sync()
            if backend is not None and hasattr(backend, "close"):
                backend.close()
            lease.release()  # stops its keeper too
            raise
        log.info("export %s of %s/%s at sequence %d (%s) on %s:%d", eid, group, volume, exp.sequence, mode,
                 exp.host, exp.port)  # never the URI: it holds the secret
        return exp

    def _plan(self, tenant: str, group: str, volume: str, at: At | None) -> Plan:
        if at is not None:
            return self.rec.plan(tenant, group, volume, at)
        # latest: the newest consistent point, resolved like an explicit sequence (one timeline read)
        j = self.rec._group(tenant, group)
        volumes = j.check_volumes(volume)
        latest = j.latest_consistent or j.latest  # none consistent: resolve refuses, naming why
        point = j.resolve(At.of(sequence=latest.sequence if latest else 1), self.rec.store)
        return Plan(j, point, volumes, j.base_for(point), tenant)

    def list(self, tenant: str, group: str | None = None) -> list[Export]:
        with self._lock:
            return sorted((e for e in self._exports.values()
                           if e.tenant == tenant and (group is None or e.group == group)), key=lambda e: e.created)

    def get(self, tenant: str, group: str, eid: str) -> Export:
        with self._lock:
            e = self._exports.get(eid)
        if e is None or e.tenant != tenant or e.group != group:
            raise NotFound(f"no open export {eid!r} in group {group!r}; list them with GET /v1/groups/{group}/exports")
        return e

    def close(self, tenant: str, eid: str, group: str | None = None) -> dict:
        """Stop the server, delete the overlay, bill the rest, release the lease."""
        with self._lock:
            e = self._exports.get(eid)
            if e is None or e.tenant != tenant or (group is not None and e.group != group):
                raise NotFound(f"no open export {eid!r} in group {group!r}; "
                               "list them with GET /v1/groups/{group}/exports")
            del self._exports[eid]
        out = e.to_dict()
        try:
            e.server.close_sync()
            if hasattr(e.backend, "close"):
                e.backend.close()
        finally:
            now = self.clock()
            try:
                self.usage.export_seconds(e.tenant, e.group, e.id, e.billed_until, now)
            except Exception:
                log.exception("billing the end of export %s failed", e.id)
            out["seconds"] = round(now - e.created, 3)
            e.lease.release()  # stops its keeper too
        return out
