"""HTTP routes: instant-access exports (a recovery point served over NBD, read-only or overlay)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from services.recovery.api.deps import CurrentTenant, check_licence
from services.recovery.api.routes import AtModel
from services.recovery.errors import BadRequest
from services.recovery.instant.registry import ExportRegistry
from services.recovery.planner import At
from shared.usage import Feature

router = APIRouter(prefix="/v1")


def get_exports(request: Request) -> ExportRegistry:
    return request.app.state.exports


Exports = Annotated[ExportRegistry, Depends(get_exports)]


class ExportRequest(BaseModel):
    volume: str = Field(..., description="the volume to export (one volume per export)")
    at: AtModel | None = Field(None, description="exactly one of sequence / timestamp_ns / bookmark")
    latest: bool = Field(False, description="export the latest recoverable point instead of 'at'")
    mode: Literal["read-only", "overlay"] = Field("read-only", description="overlay = writable throwaway overlay")


def check_request(body: ExportRequest) -> At | None:
    """Shape checks without I/O: exactly one of 'at' and 'latest'."""
    if (body.at is None) == (not body.latest):
        raise BadRequest("give exactly one of 'at' ({sequence|timestamp_ns|bookmark}) or 'latest': true")
    if body.volume == "all":
        raise BadRequest("an export serves one volume: name it (volume 'all' is for recoveries)")
    return None if body.latest else At.of(body.at.sequence, body.at.timestamp_ns, body.at.bookmark)


@router.post("/groups/{group}/exports", status_code=201)
async def create_export(group: str, body: ExportRequest, tenant: CurrentTenant, exports: Exports,
                        request: Request) -> dict:
    at = check_request(body)
    check_licence(request, tenant, Feature.INSTANT_ACCESS, group)
    exp = await run_in_threadpool(exports.create, tenant, group, body.volume, at, body.mode)
    return exp.to_dict(reveal=True)  # the only answer that carries the export's secret name


@router.get("/groups/{group}/exports")
async def list_exports(group: str, tenant: CurrentTenant, exports: Exports) -> dict:
    return {"group": group, "exports": [e.to_dict() for e in exports.list(tenant, group)]}


@router.get("/groups/{group}/exports/{export_id}")
async def get_export(group: str, export_id: str, tenant: CurrentTenant, exports: Exports) -> dict:
    return exports.get(tenant, group, export_id).to_dict()


@router.delete("/groups/{group}/exports/{export_id}")
async def delete_export(group: str, export_id: str, tenant: CurrentTenant, exports: Exports) -> dict:
    return await run_in_threadpool(exports.close, tenant, export_id, group)
