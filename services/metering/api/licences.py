"""Licences: switch protection, instant access and burst on or off, per tenant or per group.

A tenant's operator may read its licences; only a provider credential switches them (a tenant
switching its own protection off would stop it and, after the grace period, purge its data).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel

from services.metering.api.deps import ProviderFor, TenantScope
from shared.errors import InvalidName
from shared.usage import Feature

router = APIRouter()


class Switch(BaseModel):
    enabled: bool
    group: str | None = None  # None: the whole tenant


@router.get("/v1/tenants/{tenant}/licences")
def list_licences(request: Request, tenant: TenantScope):
    book = request.app.state.licences
    return {"tenant": tenant, "licences": [lic.as_dict() for lic in book.for_tenant(tenant)]}


@router.put("/v1/tenants/{tenant}/licences/{feature}")
def switch(request: Request, tenant: ProviderFor, feature: Feature, body: Switch):
    """On: charged from the current hour. Off: meters stop from the next hour; data kept for the grace period."""
    try:
        lic = request.app.state.switch(tenant, feature, body.group, body.enabled)
    except InvalidName as err:
        raise HTTPException(422, str(err)) from err
    return lic.as_dict()
