"""POST /v1/analyses: the CLI's analysis over stored profiles, as JSON or as the HTML report."""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from agent.profile.format import ProfileError
from agent.profile.reader import read_profile
from services.analyzer.analysis import AnalysisParams, analyze_profiles
from services.analyzer.api.deps import Authorized, Metrics, Owner, Store
from services.analyzer.profiles import BadProfileName

router = APIRouter(prefix="/v1/analyses", tags=["analyses"], dependencies=[Authorized])


class AnalysisRequest(BaseModel):
    profiles: list[str] = Field(..., min_length=1, description="names of uploaded profiles (PUT /v1/profiles/{name})")
    params: AnalysisParams = Field(default_factory=AnalysisParams)


@router.post("")
def analyze(req: AnalysisRequest, tenant: Owner, store: Store, metrics: Metrics,
            format: Literal["json", "html"] = Query("json")):
    # A plain def: the analysis is CPU-bound, so FastAPI runs it in its thread pool.
    try:
        paths = [store.path(tenant, n) for n in req.profiles]  # only ever inside the tenant's own directory
    except BadProfileName as err:
        raise HTTPException(422, str(err)) from err
    missing = [n for n, p in zip(req.profiles, paths) if not p.is_file()]
    if missing:
        metrics.analyses.labels("not_found").inc()
        raise HTTPException(404, f"no such profile(s): {', '.join(missing)}; upload with PUT /v1/profiles/<name>")
    t0 = time.monotonic()
    try:
        result = analyze_profiles([read_profile(p) for p in paths], req.params)
    except ProfileError as err:
        metrics.analyses.labels("bad_profile").inc()
        raise HTTPException(422, str(err).replace(str(store.tenant_dir(tenant)) + "/", "")) from err
    metrics.seconds.observe(time.monotonic() - t0)
    metrics.analyses.labels("ok").inc()
    if format == "html":
        from services.analyzer.report_html import render_html

        return HTMLResponse(render_html(result))
    out = result.to_dict()
    for part in out["servers"] + [out["total"]]:
        part["sources"] = [s.rsplit("/", 1)[-1] for s in part["sources"]]  # no server paths to the portal
    return out
