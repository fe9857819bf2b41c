"""Dependencies: the caller's tenant (a tenant operator credential), the recovery service, the licence view."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from services.recovery.service import Recovery
from shared.auth import OPERATE
from shared.bearer import Authenticator, CurrentPrincipal  # noqa: F401 - Authenticator re-exported
from shared.licences import LicenceView, refused_feature
from shared.usage import Feature


def get_recovery(request: Request) -> Recovery:
    return request.app.state.recovery


def current_tenant(who: CurrentPrincipal) -> str:
    """Recovery acts on the token's own tenant: an operator credential (an agent's is refused with 403)."""
    if who.tenant is None:
        raise HTTPException(403, "recovery acts on the tenant of the token; use that tenant's operator "
                                 "credential (`dialback token create TENANT --scope operate`)")
    who.require(OPERATE)
    return who.tenant


def check_licence(request: Request, tenant: str, feature: Feature, group: str | None = None) -> None:
    view: LicenceView = request.app.state.licences
    if not view.enabled(tenant, feature, group):
        raise HTTPException(403, refused_feature(tenant, feature, group))


CurrentTenant = Annotated[str, Depends(current_tenant)]
RecoveryDep = Annotated[Recovery, Depends(get_recovery)]
