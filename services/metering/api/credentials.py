"""Credentials of a tenant, for the provider: list, issue, rotate (with an overlap), revoke.

Provider credential only (a tenant's operator gets 403, anyone else 404). The
tenants file is the one the services on this host read (``DIALBACK_TENANTS_FILE``);
they notice a change on their next request. A token appears in exactly one
answer, the one that issued it.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from shared import auth
from shared.errors import InvalidName
from services.metering.api.deps import ProviderFor

router = APIRouter(prefix="/v1/tenants/{tenant}/credentials")


class NewCredential(BaseModel):
    scopes: list[str] = Field(default_factory=lambda: [auth.OPERATE], description="ingest and/or operate")
    label: str | None = Field(None, max_length=200)


class Rotation(BaseModel):
    overlap_s: float = Field(3600.0, ge=0, le=90 * 86400, description="how long the old token keeps working")


def _path(request: Request):
    return request.app.state.auth.path


def _clock(request: Request):
    # the clock the authenticator checks expiry with, so an overlap ends when it says it does
    return getattr(request.app.state.auth, "clock", time.time)


def _answer(fn):
    try:
        return fn()
    except (auth.UnknownTenant, auth.UnknownCredential) as err:
        raise HTTPException(404, str(err)) from err
    except (auth.AuthError, InvalidName) as err:
        raise HTTPException(422, str(err)) from err


@router.get("")
def list_credentials(request: Request, tenant: ProviderFor) -> dict:
    now = _clock(request)()
    creds = _answer(lambda: auth.list_credentials(_path(request), tenant))
    return {"tenant": tenant, "credentials": [c.public(now) for c in creds]}


@router.post("", status_code=201)
def create_credential(request: Request, tenant: ProviderFor, body: NewCredential) -> dict:
    clock = _clock(request)
    new = _answer(lambda: auth.issue(_path(request), tenant, body.scopes, label=body.label, clock=clock))
    return {"credential": new.credential.public(clock()), "token": new.token}


@router.post("/{credential}/rotate", status_code=201)
def rotate_credential(request: Request, tenant: ProviderFor, credential: str, body: Rotation) -> dict:
    clock = _clock(request)
    new = _answer(lambda: auth.rotate(_path(request), tenant, credential, body.overlap_s, clock=clock))
    now = clock()
    old = next(c for c in auth.list_credentials(_path(request), tenant) if c.id == credential)
    return {"credential": new.credential.public(now), "token": new.token, "old": old.public(now)}


@router.delete("/{credential}")
def revoke_credential(request: Request, tenant: ProviderFor, credential: str) -> dict:
    clock = _clock(request)
    return {"credential": _answer(lambda: auth.revoke(_path(request), tenant, credential, clock=clock)).public(clock())}
