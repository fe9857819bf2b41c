"""Runs operations: every step is recorded as an event, every step is idempotent.

`drive` moves an operation forward from wherever its events say it is; after
a crash it is simply called again. Cloud steps adopt what a crashed attempt
already made (providers find resources by name and tags), so a resumed run
neither duplicates nor leaks. Failure during provisioning rolls back: every
resource tagged with the operation is deleted.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import defaultdict
from typing import Callable

from services.burst.cleanup import cleanup
from services.burst.errors import BurstError, Conflict, InvalidRequest, NotFound, ProvisionFailed
from services.burst.events import EventLog
from services.burst.hooks import run_hook
from services.burst.images import ImageSource, release, resolve
from services.burst.machine import IllegalTransition, OperationState, apply, fold
from services.burst.model import Kind, OperationSpec
from services.burst.provider_log import to_provider_log
from services.burst.reverse_tap import check_reverse_tap
from services.burst.provider.base import Provider, Resource
from services.burst.usage import BurstUsage
from services.burst.validation import pick_flavor, validate

log = logging.getLogger("dialback.burst")


BOOT_ATTEMPTS = 2
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


class Cancelled(Exception):
    """Cleanup was requested while the operation was still being provisioned."""


class Engine:
    def __init__(self, events: EventLog, provider: Provider, images: ImageSource, usage: BurstUsage,
                 prod_network: str = "dialback-prod", drtest_cidr: str = "10.252.0.0/24",
                 default_flavor: str | None = None, boot_timeout: float = 300.0,
                 usage_interval: float = 3600.0, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.events, self.provider, self.images, self.usage = events, provider, images, usage
        self.prod_network, self.drtest_cidr, self.default_flavor = prod_network, drtest_cidr, default_flavor
        self.boot_timeout, self.usage_interval, self.clock, self.sleep = boot_timeout, usage_interval, clock, sleep
        self.failback = None  # failback.Failback, when the service can read the journals (object store)
        self._append_lock = threading.Lock()
        self._drive_locks: dict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)

    # -- state -------------------------------------------------------------------------------
    def state(self, tenant: str, op_id: str) -> OperationState:
        st = fold(self.events.read(tenant, op_id))
        if st.status == "new":
            raise NotFound(f"operation {op_id!r} of tenant {tenant!r} does not exist")
        return st

    def append(self, st: OperationState, type_: str, **data) -> OperationState:
        """Validate against the current log, then write: a concurrent cleanup request wins."""
        with self._append_lock:
            current = fold(self.events.read(st.tenant, st.id))
            status = current.status
            ev = {"type": type_, "time": self.clock(), **data}
            try:
                apply(current, ev)
            except IllegalTransition as err:
                if status in ("cleaning", "rolling_back", "cleaned", "failed"):
                    raise Cancelled(f"operation {st.id} is {status}") from err
                raise
            self.events.append(st.tenant, st.id, type_, **{k: v for k, v in ev.items() if k != "type"})
            return current

    # -- requests ----------------------------------------------------------------------------
    def submit(self, spec: OperationSpec) -> tuple[OperationState, bool]:
        """Record a new operation (validated first); the same id and request again returns it unchanged."""
        if self.events.exists(spec.tenant, spec.id):
            st = self.state(spec.tenant, spec.id)
            if st.spec != spec:
                raise Conflict(f"operation id {spec.id!r} was already used for a different request; "
                               "use a new id, or repeat the original request exactly")
            return st, False
        validate(spec, self.provider, self.images, self.prod_network, self.default_flavor)
        st = OperationState(tenant=spec.tenant, id=spec.id)
        return self.append(st, "OperationRequested", spec=spec.model_dump(mode="json")), True

    def request_cleanup(self, tenant: str, op_id: str, reason: str) -> OperationState:
        st = self.state(tenant, op_id)
        if st.terminal or st.status in ("cleaning", "rolling_back"):
            return st
        return self.append(st, "CleanupRequested", reason=reason)

    def scale(self, tenant: str, op_id: str, count: int) -> OperationState:
        st = self.state(tenant, op_id)
        if st.spec.kind is not Kind.BURST:
            raise InvalidRequest(f"only burst operations scale; {op_id} is a {st.spec.kind.value}")
        if st.status not in ("running", "scaling"):
            raise Conflict(f"operation {op_id} is {st.status}; scale it once it is running")
        if not 0 <= count <= 100:
            raise InvalidRequest("count must be between 0 and 100")
        grow = count - len(st.live_servers())
        if grow > 0:
            from services.burst.validation import check_quota
            check_quota(self.provider, self.provider.flavors(),
                        [st.spec.server_for(0)] * grow, self.default_flavor)
        return self.append(st, "ScaleRequested", count=count)

    def request_failback(self, tenant: str, op_id: str, reverse_group: str, target: str, agent_url: str,
                         reverse_volume: str | None = None, expect_sha256: str | None = None,
                         requested_by: str = "provider") -> OperationState:
        """Start bringing a running failover home (failback.py); checked fully before anything is touched.

        ``agent_url`` becomes the operation's registered reverse tap (recorded with ``requested_by``): the
        only URL the failback contacts, and only while its host is allowed (reverse_tap.py)."""
        if self.failback is None:
            raise InvalidRequest("this burst service has no object-store settings, so it cannot read the "
                                 "reverse journal; set DIALBACK_S3_ENDPOINT (and credentials) and restart it")
        st = self.state(tenant, op_id)
        if st.status == "failing_back" and st.failback.get("reverse_group") == reverse_group:
            return st  # the same request again
        self.failback.check(st, reverse_group, target, agent_url)
        return self.append(st, "FailbackRequested", reverse_group=reverse_group, target=str(target),
                           reverse_volume=reverse_volume or f"{st.spec.volume}-back",
                           agent_url=check_reverse_tap(agent_url, self.failback.allowed),
                           requested_by=requested_by, expect_sha256=expect_sha256)

    # -- driving -----------------------------------------------------------------------------
    def drive(self, tenant: str, op_id: str) -> OperationState:
        """Move the operation forward to a resting state (running, cleaned or failed)."""
        with self._drive_locks[(tenant, op_id)]:
            st = self.state(tenant, op_id)
            if st.status in ("requested", "provisioning", "scaling"):
                try:
                    st = self._provision(st)
                except Cancelled:
                    st = self.state(tenant, op_id)
                except Exception as err:  # noqa: BLE001 - any failure must roll back
                    log.warning("operation %s/%s failed: %s", tenant, op_id, err)
                    st = self.state(tenant, op_id)
                    if st.status in ("provisioning", "scaling", "requested"):
                        st = self.append(st, "OperationFailed", error=_message(err))
            if st.status == "failing_back":
                try:
                    st = self.failback.run(self, st)
                except Cancelled:
                    st = self.state(tenant, op_id)
                except Exception as err:  # noqa: BLE001 - the failover keeps running; the user may retry
                    log.warning("failback of %s/%s failed: %s", tenant, op_id, err)
                    st = self.state(tenant, op_id)
                    if st.status == "failing_back":
                        st = self.append(st, "FailbackFailed", error=_message(err))
            if st.status in ("cleaning", "rolling_back"):
                st = cleanup(self, st)
            return st

    def tags(self, st: OperationState) -> dict[str, str]:
        return {"dialback-op": st.id, "dialback-tenant": st.tenant}

    def _provision(self, st: OperationState) -> OperationState:
        spec = st.spec
        if st.status == "requested":
            st = self.append(st, "ProvisioningStarted")
        if spec.is_isolated:
            if not st.network:
                net, sub = self.provider.ensure_network(f"dialback-{st.id}", self.drtest_cidr, self.tags(st))
                st = self.append(st, "NetworkCreated", network_id=net, subnet_id=sub)
            net_id = st.network["network_id"]
        else:
            net_id = self.provider.find_network(self.prod_network)
            if net_id is None:
                raise ProvisionFailed(f"network {self.prod_network!r} disappeared")
        for stage in spec.stage_list(st.desired_count):
            done = stage.name in st.stages_done
            for attempt in range(BOOT_ATTEMPTS):
                st = self._create_servers(st, stage, net_id)
                st, failed = self._wait_servers(st, stage, last=attempt == BOOT_ATTEMPTS - 1)
                if not failed:
                    break
            if done:
                continue
            if stage.wait_seconds:
                self.sleep(stage.wait_seconds)
            if stage.hook:
                servers = {n: st.servers[n] for n in (s.name for s in stage.servers)}
                rc, out = run_hook(stage.hook, servers, st.id, stage.name, stage.hook_timeout_seconds)
                # the hook ran with the service's credentials: its output is the provider's alone
                ref = to_provider_log(f"hook of {st.tenant}/{st.id} stage {stage.name!r} exited with {rc}", out)
                st = self.append(st, "HookRan", stage=stage.name, returncode=rc, ref=ref)
                if rc != 0:
                    raise ProvisionFailed(f"hook of stage {stage.name!r} exited with {rc}; its output is in the "
                                          f"provider's log under reference {ref}")
            st = self.append(st, "StageCompleted", stage=stage.name)
        if st.status == "scaling":
            wanted = {s.name for s in spec.all_servers(st.desired_count)}
            for name in sorted(set(st.live_servers()) - wanted):
                st = self._remove_server(st, name)
        limit = spec.time_limit_seconds
        return self.append(st, "OperationRunning", deadline=(self.clock() + limit) if limit else None)

    def _create_servers(self, st: OperationState, stage, net_id: str) -> OperationState:
        flavors = None
        for srv in stage.servers:
            if srv.name in st.live_servers():
                continue
            key = f"{srv.group}/{srv.volume}@{srv.point}"
            if key not in st.images:
                if key not in st.points:  # pinned once: a resumed operation boots the same point
                    pinned = resolve(self.images, st.tenant, srv.group, srv.volume, srv.point)
                    st = self.append(st, "PointResolved", key=key, point=pinned)
                t0 = self.clock()
                path = self.images.materialize(st.tenant, srv.group, srv.volume, st.points[key])
                t1 = self.clock()
                # Glance reads "name=a:b" as a filter operator: points such as seq:N are spelled seq-N here
                point_name = _SAFE.sub("-", srv.point)
                info = self.provider.ensure_image(f"dialback-{st.id}-{srv.group}-{srv.volume}-{point_name}",
                                                  path, self.tags(st))
                st = self.append(st, "ImageUploaded", key=key, id=info.id, checksum=info.checksum,
                                 size=info.size, seconds=self.clock() - t1, materialize_seconds=t1 - t0,
                                 point=st.points[key])
                release(self.images, path)
            image = st.images[key]
            t_api = self.clock()
            flavors = flavors or self.provider.flavors()
            flavor = pick_flavor(flavors, srv.flavor, image["size"], self.default_flavor)
            if srv.name not in st.ports:
                port = self.provider.ensure_port(f"dialback-{st.id}-{srv.name}", net_id, self.tags(st))
                st = self.append(st, "PortCreated", name=srv.name, port_id=port)
            sid = self.provider.ensure_server(f"dialback-{st.id}-{srv.name}", image["id"], flavor,
                                              st.ports[srv.name], self.tags(st))
            st = self.append(st, "ServerCreated", name=srv.name, server_id=sid, flavor=flavor,
                             image_id=image["id"], stage=stage.name, api_seconds=self.clock() - t_api)
        return st

    def _wait_servers(self, st: OperationState, stage, last: bool) -> tuple[OperationState, bool]:
        """Wait for ACTIVE. A server that went to ERROR is deleted and reported (False: all ACTIVE)
        so that it is built once more: a one-host test cloud fails builds on transient DB locks."""
        failed = False
        for srv in stage.servers:
            rec = st.servers[srv.name]
            if rec["status"] == "ACTIVE" or rec.get("deleted"):
                continue
            try:
                info = self.provider.wait_active(rec["id"], self.boot_timeout)
            except ProvisionFailed as err:
                if last:
                    raise
                log.warning("server %s of %s failed to build, retrying: %s", srv.name, st.id, err)
                self.provider.delete(Resource("server", rec["id"], srv.name))
                st = self.append(st, "BootFailed", name=srv.name, error=str(err))
                failed = True
                continue
            st = self.append(st, "ServerActive", name=srv.name, addresses=info.addresses,
                             seconds=self.clock() - rec["created_at"])
        return st, failed

    def _remove_server(self, st: OperationState, name: str) -> OperationState:
        rec = st.servers[name]
        st = self.bill(st, name, self.clock())
        self.provider.delete(Resource("server", rec["id"], name))
        if name in st.ports:
            self.provider.delete(Resource("port", st.ports[name], name))
        return self.append(st, "ServerDeleted", name=name)

    def bill(self, st: OperationState, name: str, until: float) -> OperationState:
        rec = st.servers[name]
        since = st.usage_until.get(name)
        if since is None or until <= since:
            return st
        self.usage.server_seconds(st.tenant, st.id, name, rec["flavor"], since, until)
        return self.append(st, "UsageEmitted", name=name, since=since, until=until)

    # -- time --------------------------------------------------------------------------------
    def due(self, now: float | None = None) -> list[tuple[str, str]]:
        """Operations that need driving now: unfinished ones (after a restart) and expired ones."""
        now = self.clock() if now is None else now
        out = []
        for tenant, op_id in self.events.operations():
            try:
                st = self.state(tenant, op_id)
            except NotFound:
                continue
            if st.terminal:
                continue
            if st.status == "running":
                if st.deadline is not None and st.deadline <= now:
                    self.request_cleanup(tenant, op_id, "time limit reached")
                    out.append((tenant, op_id))
                elif self._drive_locks[(tenant, op_id)].acquire(blocking=False):
                    try:  # periodic usage for long-running servers
                        for name, rec in st.live_servers().items():
                            if rec["status"] == "ACTIVE" and now - st.usage_until.get(name, now) >= self.usage_interval:
                                st = self.bill(st, name, now)
                    finally:
                        self._drive_locks[(tenant, op_id)].release()
            elif not self._drive_locks[(tenant, op_id)].locked():
                out.append((tenant, op_id))
        return out


def _message(err: Exception) -> str:
    text = str(err) or type(err).__name__
    return text if isinstance(err, BurstError) else f"{type(err).__name__}: {text}"
