"""Request dependencies: who is asking (bearer token -> tenant, or the provider's admin token)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import Depends, HTTPException, Request


class Authenticator(Protocol):
    def authenticate(self, token: str | None) -> str | None: ...


@dataclass(frozen=True)
class Principal:
    tenant: str | None  # None for the provider
    admin: bool = False

    def may_read(self, tenant: str) -> bool:
        return self.admin or self.tenant == tenant


def principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "send 'Authorization: Bearer <token>' (a tenant token or the provider's "
                                 "admin token)", headers={"WWW-Authenticate": "Bearer"})
    token = token.strip()
    admin_token = request.app.state.admin_token
    if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
        return Principal(None, admin=True)
    tenant = request.app.state.auth.authenticate(token)
    if tenant is None:
        raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
    return Principal(tenant)


CurrentPrincipal = Annotated[Principal, Depends(principal)]


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
