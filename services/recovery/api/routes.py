"""HTTP routes: recovery points, recoveries to objects, image downloads."""

from __future__ import annotations

import os
from typing import Literal

from fastapi import APIRouter, BackgroundTasks
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from services.recovery import metrics
from services.recovery.api.deps import CurrentTenant, RecoveryDep
from services.recovery.errors import BadRequest
from services.recovery.planner import At
from services.recovery.upload import check_target_key

router = APIRouter(prefix="/v1")


class AtModel(BaseModel):
    sequence: int | None = None
    timestamp_ns: int | None = None
    bookmark: str | None = None


class TargetModel(BaseModel):
    type: Literal["object"] = "object"
    key: str | None = Field(None, description="object key (one volume) or key prefix ending in '/'")
    digest: bool = Field(False, description="also return each image's SHA-256")


class RecoveryRequest(BaseModel):
    volume: str = Field("all", description="a volume id, or 'all' for the whole consistency group")
    at: AtModel
    target: TargetModel = TargetModel()


@router.get("/groups/{group}/points")
async def points(group: str, tenant: CurrentTenant, rec: RecoveryDep) -> dict:
    return await run_in_threadpool(rec.points, tenant, group)


@router.post("/groups/{group}/verify")
async def verify(group: str, tenant: CurrentTenant, rec: RecoveryDep) -> dict:
    """Read every object the group's retained points need; ``ok`` false lists each problem (200 either way)."""
    return await run_in_threadpool(rec.verify, tenant, group)


@router.post("/groups/{group}/recoveries", status_code=201)
async def recover(group: str, body: RecoveryRequest, tenant: CurrentTenant, rec: RecoveryDep) -> dict:
    at = At.of(body.at.sequence, body.at.timestamp_ns, body.at.bookmark)
    if body.target.key is not None:
        check_target_key(body.target.key)
    plan = await run_in_threadpool(rec.plan, tenant, group, body.volume, at)
    with metrics.RECOVERY_SECONDS.labels("object").time():
        res = await run_in_threadpool(rec.to_objects, plan, body.target.key, body.target.digest)
    metrics.RECOVERED_BYTES.inc(sum(v["size"] for v in res.volumes))
    return res.to_dict()


@router.get("/groups/{group}/volumes/{volume}/image")
async def image(group: str, volume: str, tenant: CurrentTenant, rec: RecoveryDep, background: BackgroundTasks,
                sequence: int | None = None, timestamp_ns: int | None = None,
                bookmark: str | None = None) -> FileResponse:
    """The volume's bytes at the point; built completely before the first byte is sent."""
    at = At.of(sequence, timestamp_ns, bookmark)
    if volume == "all":
        raise BadRequest("download one volume at a time (or POST a recovery for the whole group)")
    plan = await run_in_threadpool(rec.plan, tenant, group, volume, at)
    with metrics.RECOVERY_SECONDS.labels("download").time():
        paths, _ = await run_in_threadpool(rec.to_temp, plan)
    path = paths[volume]
    background.add_task(os.unlink, path)
    metrics.RECOVERED_BYTES.inc(plan.journal.volumes[volume])
    return FileResponse(path, media_type="application/octet-stream",
                        filename=f"{group}-{volume}-seq{plan.point.sequence}.img",
                        headers={"X-Dialback-Sequence": str(plan.point.sequence),
                                 "X-Dialback-Timestamp-Ns": str(plan.point.timestamp_ns)})
