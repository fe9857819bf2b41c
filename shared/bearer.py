"""Who is asking an HTTP API: a tenant (bearer token from the tenants file) or the provider (admin token).

One scheme for every service that has a provider view (metering, burst): tokens are
checked by :class:`shared.auth.TenantAuth` (digests, constant time) and the admin token
is compared in constant time. The app puts ``state.auth`` (an :class:`Authenticator`) and
``state.admin_token`` (``str | None``; None = nobody is admin) on the FastAPI app.
Neither a token nor its digest is ever put into an answer or a log line.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import Depends, HTTPException, Request

# Values that show an admin token was copied from an example instead of generated.
PLACEHOLDERS = {"changeme", "change-me", "change_me", "admin", "secret", "token", "password", "xxx", "todo"}
MIN_ADMIN_TOKEN = 16


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


def admin_token_value(secret, setting: str) -> str | None:
    """The admin token of a SecretStr setting: unset/blank = None (nobody is admin); a placeholder is refused."""
    value = secret.get_secret_value().strip() if secret is not None else ""
    if not value:
        return None
    if value.lower() in PLACEHOLDERS or len(value) < MIN_ADMIN_TOKEN:
        raise ValueError(f"{setting} looks like a placeholder (shorter than {MIN_ADMIN_TOKEN} characters or a "
                         "well-known word); generate one with "
                         "`python -c 'import secrets; print(secrets.token_urlsafe(32))'` or leave it unset")
    return value
