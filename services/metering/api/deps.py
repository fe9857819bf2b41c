"""Request dependencies: who is asking, checked by shared.bearer (tenant operator or provider credential)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException

from shared.auth import OPERATE, PROVIDER
from shared.bearer import Authenticator, CurrentPrincipal, Principal, principal  # noqa: F401 - re-exported


def tenant_scope(tenant: str, who: CurrentPrincipal) -> str:
    # Same answer for "not yours" and "does not exist": nothing is inferred about other tenants.
    who.require(OPERATE, tenant, not_found=f"no usage for tenant {tenant!r} under this token")
    return tenant


TenantScope = Annotated[str, Depends(tenant_scope)]


def admin_only(who: CurrentPrincipal) -> Principal:
    if not who.allows(PROVIDER):
        raise HTTPException(403, "this needs a provider credential (DIALBACK_METERING_ADMIN_TOKEN or "
                                 "`dialback token create --provider`): the view across tenants, licence "
                                 "switches and credentials are the provider's; tenants read "
                                 "/v1/tenants/{tenant}/usage and /v1/tenants/{tenant}/licences")
    return who


Admin = Annotated[Principal, Depends(admin_only)]


def provider_for(tenant: str, who: CurrentPrincipal) -> str:
    """A provider-only route about one tenant: every other credential gets the same 403, whichever tenant it
    names (its own, another, one that does not exist), so the answer tells nothing about other tenants."""
    admin_only(who)
    return tenant


ProviderFor = Annotated[str, Depends(provider_for)]
