"""Request dependencies (the service, who is asking, tenant scope) and the mapping of burst errors to HTTP answers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from services.burst.errors import (Conflict, InvalidRequest, NotFound, ProvisionFailed, QuotaExceeded)
from services.burst.service import BurstService
from shared.auth import OPERATE, PROVIDER
from shared.bearer import CurrentPrincipal, Principal
from shared.licences import refused_feature
from shared.usage import Feature
from shared.errors import DialbackError, InvalidName
from shared.objectstore import ObjectStoreError, TransientStoreError


def get_service(request: Request) -> BurstService:
    return request.app.state.burst


Service = Annotated[BurstService, Depends(get_service)]


def not_yours(tenant: str) -> HTTPException:
    # Same answer as for a tenant without operations: nothing is inferred about other tenants.
    return HTTPException(404, detail={"error": "NotFound", "message": f"no operations of tenant {tenant!r} under "
                                      "this token; use that tenant's operator token (or a provider credential)"})


def require(who: Principal, scope: str, tenant: str | None = None) -> None:
    """shared.bearer's check, answered in burst's error shape (404 for another tenant, 403 for a scope)."""
    refused = who.refusal(scope, tenant)
    if refused is None:
        return
    if refused[0] == 404:
        raise not_yours(tenant or "?")
    raise forbidden(refused[1])


def tenant_scope(tenant: str, who: CurrentPrincipal) -> str:
    """The path's tenant, if the token may act on it (its own operator credential, or a provider's); else 404/403."""
    require(who, OPERATE, tenant)
    return tenant


TenantScope = Annotated[str, Depends(tenant_scope)]


def admin_only(who: CurrentPrincipal) -> Principal:
    if not who.allows(PROVIDER):
        raise HTTPException(403, detail={"error": "Forbidden", "message": "the view across tenants needs the "
                                         "provider's admin token (DIALBACK_BURST_ADMIN_TOKEN); tenants use "
                                         "/v1/tenants/{tenant}/operations"})
    return who


Admin = Annotated[Principal, Depends(admin_only)]


def forbidden(message: str) -> HTTPException:
    return HTTPException(403, detail={"error": "Forbidden", "message": message})


def check_hooks(spec, who: Principal) -> None:
    """Hooks are commands run on the burst host with the service's credentials: the provider's to set."""
    hooks = [spec.hook] + [st.hook for st in (spec.stages or [])]
    if not who.allows(PROVIDER) and any(hooks):
        raise forbidden("hooks run as commands on the provider's burst host, so only the provider's admin token "
                        "may set them; ask your provider to add this hook, or leave 'hook' out")


def check_failback_target(target: str, tenant: str, root, who: Principal) -> None:
    """A tenant may write only disks under <failback root>/<tenant>/; the admin token may name any path."""
    if who.allows(PROVIDER):
        return
    if root is None:
        raise forbidden("failback writes a disk on the provider's host: ask your provider (admin token), or ask "
                        "them to set DIALBACK_BURST_FAILBACK_ROOT so tenants can fail back on their own")
    from pathlib import Path

    mine = (Path(root) / tenant).resolve()
    if not Path(target).resolve().is_relative_to(mine):
        raise forbidden(f"the failback target must be a disk under {mine}/ (your tenant's failback directory)")

def check_licence(request: Request, tenant: str, group: str | None) -> None:
    """Burst, failover and DR tests need the burst licence of the tenant (and of the group, if named)."""
    if not request.app.state.licences.enabled(tenant, Feature.BURST, group):
        raise forbidden(refused_feature(tenant, Feature.BURST, group))


_STATUS = [(NotFound, 404), (Conflict, 409), (QuotaExceeded, 422), (InvalidRequest, 422), (InvalidName, 422),
           (ProvisionFailed, 502)]


def http_error(err: Exception) -> HTTPException:
    for cls, code in _STATUS:
        if isinstance(err, cls):
            return HTTPException(code, detail={"error": type(err).__name__, "message": str(err)})
    name = type(err).__name__
    if isinstance(err, TransientStoreError):
        return HTTPException(503, detail={"error": name, "message": f"object storage is unavailable, retry: {err}"})
    if isinstance(err, ObjectStoreError):
        return HTTPException(500, detail={"error": name, "message": f"the recovery point could not be read from "
                                          f"object storage (check the S3 settings and DIALBACK_MASTER_KEY_FILE): {err}"})
    if isinstance(err, DialbackError):
        return HTTPException(500, detail={"error": name, "message": str(err)})
    return HTTPException(503, detail={"error": name,
                                      "message": f"the cloud could not be reached or answered oddly: {err}"})
