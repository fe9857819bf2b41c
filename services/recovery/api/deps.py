"""Dependencies: the caller's tenant (bearer token) and the recovery service."""

from __future__ import annotations

from typing import Annotated, Protocol

from fastapi import Depends, HTTPException, Request, status

from services.recovery.service import Recovery


class Authenticator(Protocol):
    def authenticate(self, token: str | None) -> str | None: ...


def get_recovery(request: Request) -> Recovery:
    return request.app.state.recovery


def current_tenant(request: Request) -> str:
    auth: Authenticator = request.app.state.auth
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    tenant = auth.authenticate(token.strip()) if scheme.lower() == "bearer" else None
    if tenant is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or unknown bearer token: send "
                            "'Authorization: Bearer <tenant token>'", headers={"WWW-Authenticate": "Bearer"})
    return tenant


CurrentTenant = Annotated[str, Depends(current_tenant)]
RecoveryDep = Annotated[Recovery, Depends(get_recovery)]
