"""Usage queries: one tenant's own usage, and the provider's view across tenants; JSON or CSV."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse

from services.metering.api.deps import Admin, TenantScope
from services.metering.feed import QueryError, rows_to_csv, totals

router = APIRouter()

Granularity = Literal["hour", "day"]
Format = Literal["json", "csv"]


def _answer(request: Request, tenant: str | None, start: datetime, end: datetime, granularity: str,
            fmt: str, by_subject: bool):
    feed = request.app.state.feed
    try:
        rows = feed.query(tenant, start, end, granularity, by_subject)
    except QueryError as err:
        raise HTTPException(422, str(err)) from err
    if fmt == "csv":
        name = f"usage-{tenant or 'all'}-{start:%Y%m%dT%H}-{end:%Y%m%dT%H}.csv"
        return PlainTextResponse(rows_to_csv(rows), media_type="text/csv",
                                 headers={"Content-Disposition": f'attachment; filename="{name}"'})
    return {"tenant": tenant, "from": start.isoformat(), "to": end.isoformat(), "granularity": granularity,
            "rows": rows, "totals": totals(rows), "lines_read": len(feed)}


@router.get("/v1/tenants/{tenant}/usage")
def tenant_usage(request: Request, tenant: TenantScope, start: datetime = Query(alias="from"),
                 end: datetime = Query(alias="to"), granularity: Granularity = "hour",
                 format: Format = "json", by: Literal["meter", "subject"] = "meter"):
    return _answer(request, tenant, start, end, granularity, format, by == "subject")


@router.get("/v1/usage")
def all_usage(request: Request, _admin: Admin, start: datetime = Query(alias="from"),
              end: datetime = Query(alias="to"), granularity: Granularity = "hour", format: Format = "json",
              by: Literal["meter", "subject"] = "meter", tenant: str | None = None):
    return _answer(request, tenant, start, end, granularity, format, by == "subject")


@router.get("/v1/tenants/{tenant}/lines")
def tenant_lines(request: Request, tenant: TenantScope):
    """Every billing line of the tenant (usage, corrections, licence hours), for export and audit."""
    lines = sorted(request.app.state.feed.lines(tenant), key=lambda ln: (ln.hour, ln.meter, ln.subject, ln.version))
    return {"tenant": tenant, "lines": [ln.__dict__ for ln in lines]}
