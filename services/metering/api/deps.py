"""Request dependencies: who is asking (bearer token -> tenant, or the provider's admin token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException

from shared.bearer import Authenticator, CurrentPrincipal, Principal, principal  # noqa: F401 - re-exported


def tenant_scope(tenant: str, who: CurrentPrincipal) -> str:
    # Same answer for "not yours" and "does not exist": nothing is inferred about other tenants.
    if not who.may_read(tenant):
        raise HTTPException(404, f"no usage for tenant {tenant!r} under this token")
    return tenant


TenantScope = Annotated[str, Depends(tenant_scope)]


def admin_only(who: CurrentPrincipal) -> Principal:
    if not who.admin:
        raise HTTPException(403, "the view across tenants needs the provider's admin token "
                                 "(DIALBACK_METERING_ADMIN_TOKEN); tenants use /v1/tenants/{tenant}/usage")
    return who


Admin = Annotated[Principal, Depends(admin_only)]
