"""FastAPI dependencies: the service, the settings, the authenticated tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from services.ingest.config import IngestSettings
from services.ingest.metrics import REJECTED, IngestMetrics
from services.ingest.service import IngestService
from shared.auth import TenantAuth


def get_service(request: Request) -> IngestService:
    return request.app.state.service


def get_settings(request: Request) -> IngestSettings:
    return request.app.state.settings


def get_metrics(request: Request) -> IngestMetrics:
    return request.app.state.service.metrics


def current_tenant(request: Request) -> str:
    auth: TenantAuth = request.app.state.auth
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    tenant = auth.authenticate(token.strip()) if scheme.lower() == "bearer" else None
    if tenant is None:
        if request.method == "POST":
            get_metrics(request).batch(REJECTED, "unauthorized", 0, 0)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or unknown tenant token: send 'Authorization: Bearer <token>' "
            "with the token printed by 'dialback tenant create'",
            headers={"WWW-Authenticate": 'Bearer realm="dialback"'},
        )
    return tenant


Service = Annotated[IngestService, Depends(get_service)]
Settings = Annotated[IngestSettings, Depends(get_settings)]
Metrics = Annotated[IngestMetrics, Depends(get_metrics)]
CurrentTenant = Annotated[str, Depends(current_tenant)]
