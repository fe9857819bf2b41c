"""Who is asking an HTTP API, and the one check of what they may do.

Every service's deps call :func:`principal` (the ``Authorization: Bearer``
header) and then :meth:`Principal.require`. Tokens are looked up by
:class:`shared.auth.TenantAuth` (digests, constant time, scopes, expiry,
revocation); a service's admin token (``DIALBACK_<SERVICE>_ADMIN_TOKEN``) is a
provider credential too, compared in constant time. The app puts
``state.auth`` (an :class:`Authenticator`) and, where it has one,
``state.admin_token`` (``str | None``; None = nobody is admin) on the FastAPI app.
Neither a token nor its digest is ever put into an answer or a log line.

The rule, in one place (:meth:`Principal.refusal`): a provider credential may
do everything; a tenant credential may act only with a scope it holds (else 403 naming
the credential it needs, whatever the request names) and only on its own
tenant (anything else is a 404, the same as "does not exist", so nothing leaks).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import Depends, HTTPException, Request

from shared.auth import INGEST, OPERATE, PROVIDER, Identity

# Values that show an admin token was copied from an example instead of generated.
PLACEHOLDERS = {"changeme", "change-me", "change_me", "admin", "secret", "token", "password", "xxx", "todo"}
MIN_ADMIN_TOKEN = 16

NEEDS = {INGEST: "an agent credential (the token in the credentials file of `dialback tenant create`)",
         OPERATE: "a tenant operator credential (printed by `dialback tenant create`, or "
                  "`dialback token create TENANT --scope operate`)",
         PROVIDER: "a provider credential (the service's DIALBACK_*_ADMIN_TOKEN or "
                   "`dialback token create --provider`)"}


class Authenticator(Protocol):
    def identify(self, token: str | None) -> Identity | None: ...


@dataclass(frozen=True)
class Principal:
    tenant: str | None  # None for the provider
    scopes: frozenset[str] = frozenset()
    credential: str | None = None  # the credential id (never the token)

    @property
    def admin(self) -> bool:
        return PROVIDER in self.scopes

    def refusal(self, scope: str, tenant: str | None = None) -> tuple[int, str] | None:
        """None if allowed, else (status, message): 403 for a missing scope, else 404 for another tenant.

        The scope comes first: a credential that may not do this gets the same 403 whichever tenant
        or resource it names, so the answer tells nothing about what exists."""
        if self.admin:
            return None
        if self.tenant is None or scope not in self.scopes:
            return 403, (f"this token's credential ({', '.join(sorted(self.scopes)) or 'no scope'}) may not do "
                         f"this; it needs {NEEDS.get(scope, repr(scope))}")
        if tenant is not None and tenant != self.tenant:
            return 404, f"nothing of tenant {tenant!r} under this token"
        return None

    def allows(self, scope: str, tenant: str | None = None) -> bool:
        return self.refusal(scope, tenant) is None

    def require(self, scope: str, tenant: str | None = None, not_found: str | None = None) -> "Principal":
        """Raise the HTTP answer unless allowed; ``not_found`` words the 404 in the service's terms."""
        refused = self.refusal(scope, tenant)
        if refused is not None:
            code, message = refused
            raise HTTPException(code, not_found if code == 404 and not_found else message)
        return self


def principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "send 'Authorization: Bearer <token>' (a credential from `dialback tenant "
                                 "create` / `dialback token create`, or the provider's admin token)",
                            headers={"WWW-Authenticate": "Bearer"})
    token = token.strip()
    admin_token = getattr(request.app.state, "admin_token", None)
    if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
        return Principal(None, frozenset({PROVIDER}), "admin-token")
    who = request.app.state.auth.identify(token)
    if who is None:
        raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
    return Principal(who.tenant, who.scopes, who.credential)


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
