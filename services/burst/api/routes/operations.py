"""/v1/operations: request, inspect, scale and clean up operations.

Every route needs a bearer token (shared.bearer): a tenant operator credential acts only on its
own tenant, anything else is the same 404 as "no such operation" (an agent credential of the tenant
gets 403); a provider credential (the admin token) acts on all. New operations need the burst licence.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from services.burst.api.deps import (Admin, Service, TenantScope, check_failback_target, check_hooks,
                                     check_licence, http_error, require)
from shared.auth import OPERATE
from shared.bearer import CurrentPrincipal
from services.burst.model import OperationSpec

router = APIRouter(prefix="/v1")


class ScaleBody(BaseModel):
    count: int = Field(ge=0, le=100)


class FailbackBody(BaseModel):
    reverse_group: str = Field(description="group of the tap protecting the cloud disk (started with --baseline)")
    target: str = Field(description="path of the original site's disk the changes are applied to")
    agent_url: str = Field(description="control URL of the reverse tap, for the cut-over bookmark")
    reverse_volume: str | None = Field(None, description="the volume's name in the reverse group (default: <volume>-back)")
    expect_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$",
                                      description="digest of the cloud disk at the cut-over, checked at the end")


class CleanupBody(BaseModel):
    reason: str = "requested by user"


@router.post("/operations", status_code=202)
def request_operation(spec: OperationSpec, svc: Service, response: Response, who: CurrentPrincipal,
                      request: Request) -> dict:
    """Validate fully, record, start. Same id + same request again: 200 with the current state."""
    require(who, OPERATE, spec.tenant)  # before any validation against the cloud or the tenant's data
    check_hooks(spec, who)
    check_licence(request, spec.tenant, spec.group)
    try:
        st, created = svc.engine.submit(spec)
    except Exception as err:  # noqa: BLE001 - mapped to a clear HTTP error
        raise http_error(err) from err
    if created:
        svc.metrics.requests.labels(spec.kind.value).inc()
    else:
        response.status_code = 200
    if not st.terminal:
        svc.schedule(spec.tenant, spec.id)
    return st.summary()


@router.get("/operations")
def list_all_operations(svc: Service, _: Admin) -> list[dict]:
    """The provider's view: every tenant's operations (admin token only)."""
    try:
        return [svc.engine.state(t, o).summary() for t, o in svc.engine.events.operations()]
    except Exception as err:  # noqa: BLE001
        raise http_error(err) from err


@router.get("/tenants/{tenant}/operations")
def list_operations(tenant: TenantScope, svc: Service) -> list[dict]:
    try:
        return [svc.engine.state(t, o).summary() for t, o in svc.engine.events.operations(tenant)]
    except Exception as err:  # noqa: BLE001
        raise http_error(err) from err


@router.get("/tenants/{tenant}/operations/{op_id}")
def get_operation(tenant: TenantScope, op_id: str, svc: Service) -> dict:
    try:
        return svc.engine.state(tenant, op_id).summary()
    except Exception as err:  # noqa: BLE001
        raise http_error(err) from err


@router.get("/tenants/{tenant}/operations/{op_id}/events")
def get_events(tenant: TenantScope, op_id: str, svc: Service) -> list[dict]:
    try:
        svc.engine.state(tenant, op_id)
        # event logs written before hook output went to the provider log still hold it: never shown
        return [{k: v for k, v in ev.items() if k != "output"} for ev in svc.engine.events.read(tenant, op_id)]
    except Exception as err:  # noqa: BLE001
        raise http_error(err) from err


@router.post("/tenants/{tenant}/operations/{op_id}/scale", status_code=202)
def scale(tenant: TenantScope, op_id: str, body: ScaleBody, svc: Service) -> dict:
    try:
        st = svc.engine.scale(tenant, op_id, body.count)
    except Exception as err:  # noqa: BLE001
        raise http_error(err) from err
    svc.schedule(tenant, op_id)
    return st.summary()


@router.post("/tenants/{tenant}/operations/{op_id}/cleanup", status_code=202)
def cleanup(tenant: TenantScope, op_id: str, svc: Service, body: CleanupBody | None = None) -> dict:
    try:
        st = svc.engine.request_cleanup(tenant, op_id, (body or CleanupBody()).reason)
    except Exception as err:  # noqa: BLE001
        raise http_error(err) from err
    if not st.terminal:
        svc.schedule(tenant, op_id)
    return st.summary()


@router.post("/tenants/{tenant}/operations/{op_id}/failback", status_code=202)
def failback(tenant: TenantScope, op_id: str, body: FailbackBody, svc: Service, who: CurrentPrincipal,
             request: Request) -> dict:
    """Bring a running failover home: cut over, apply the cloud's changes to the original disk, clean up."""
    check_failback_target(body.target, tenant, request.app.state.failback_root, who)
    try:
        st = svc.engine.request_failback(tenant, op_id, body.reverse_group, body.target, body.agent_url,
                                         body.reverse_volume, body.expect_sha256,
                                         requested_by="provider" if who.admin else f"tenant {who.tenant}")
    except Exception as err:  # noqa: BLE001
        raise http_error(err) from err
    svc.schedule(tenant, op_id)
    return st.summary()
