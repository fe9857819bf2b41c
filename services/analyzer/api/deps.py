"""Route dependencies: settings, metrics, whose profiles a request acts on, the profile store."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request

from services.analyzer.config import AnalyzerSettings
from services.analyzer.metrics import AnalyzerMetrics
from services.analyzer.profiles import ProfileStore
from shared.auth import OPERATE
from shared.bearer import CurrentPrincipal
from shared.errors import InvalidName
from shared.tenancy import check_tenant


def _settings(request: Request) -> AnalyzerSettings:
    return request.app.state.settings


def _metrics(request: Request) -> AnalyzerMetrics:
    return request.app.state.metrics


def _store(request: Request) -> ProfileStore:
    return request.app.state.profiles


def owner(who: CurrentPrincipal, tenant: Annotated[str | None, Query(
        description="the tenant whose profiles the provider's admin token acts on")] = None) -> str:
    """The tenant whose profiles this request may see: a tenant token's own (a ``tenant`` naming another
    is the same 404 as a missing profile); the admin token acts for the ``tenant`` it names."""
    if who.admin:
        if tenant is None:
            raise HTTPException(422, "the admin token acts for a tenant: add ?tenant=<name>")
        try:
            return check_tenant(tenant)
        except InvalidName as err:
            raise HTTPException(422, str(err)) from err
    who.require(OPERATE, tenant if tenant is not None else who.tenant,
                not_found="no such profile(s) under this token; use that tenant's token")
    return who.tenant


Settings = Annotated[AnalyzerSettings, Depends(_settings)]
Metrics = Annotated[AnalyzerMetrics, Depends(_metrics)]
Store = Annotated[ProfileStore, Depends(_store)]
Owner = Annotated[str, Depends(owner)]
Authorized = Depends(owner)  # every /v1 route: a token is required (shared.bearer)
