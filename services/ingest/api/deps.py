"""FastAPI dependencies: the service, the settings, the authenticated agent's tenant, the licence check."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from services.ingest.config import IngestSettings
from services.ingest.metrics import REJECTED, IngestMetrics
from services.ingest.service import IngestService
from shared.auth import INGEST
from shared.bearer import principal
from shared.licences import LicenceView, refused_protection
from shared.usage import Feature


def get_service(request: Request) -> IngestService:
    return request.app.state.service


def get_settings(request: Request) -> IngestSettings:
    return request.app.state.settings


def get_metrics(request: Request) -> IngestMetrics:
    return request.app.state.service.metrics


def current_tenant(request: Request) -> str:
    """The tenant of an agent credential (scope ``ingest``): 401 unknown token, 403 any other credential."""
    try:
        who = principal(request)
        if who.tenant is None:  # the provider ships nothing: batches belong to a tenant's agent
            raise HTTPException(status.HTTP_403_FORBIDDEN, "ingest takes batches from a tenant's agent "
                                "credential only, not a provider credential")
        who.require(INGEST)
    except HTTPException as err:
        if request.method == "POST":
            get_metrics(request).batch(REJECTED, "unauthorized" if err.status_code == 401 else "forbidden", 0, 0)
        if err.status_code == 401:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="missing or unknown agent token: send 'Authorization: Bearer <token>' with the token "
                "of the credentials file written by 'dialback tenant create' (revoked, or past its rotation "
                "overlap, tokens are unknown too)",
                headers={"WWW-Authenticate": 'Bearer realm="dialback"'},
            ) from err
        raise
    return who.tenant


def licensed_tenant(group: str, request: Request) -> str:
    """An agent's tenant, if protection is on for ``group``: else 403 (the agent keeps the batch spooled)."""
    tenant = current_tenant(request)
    view: LicenceView = request.app.state.licences
    if not view.enabled(tenant, Feature.PROTECTION, group):
        get_metrics(request).batch(REJECTED, "licence", 0, 0)
        # the header tells the agent this is the licence, not its credential (agent.shipper)
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=refused_protection(tenant, group),
                            headers={"Dialback-Reason": "licence"})
    return tenant


Service = Annotated[IngestService, Depends(get_service)]
Settings = Annotated[IngestSettings, Depends(get_settings)]
Metrics = Annotated[IngestMetrics, Depends(get_metrics)]
CurrentTenant = Annotated[str, Depends(current_tenant)]
LicensedTenant = Annotated[str, Depends(licensed_tenant)]
