"""/healthz (the process answers and its state dir is writable) and /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.burst.api.deps import Service

router = APIRouter()


@router.get("/healthz")
def healthz(svc: Service) -> dict:
    root = svc.engine.events.root
    return {"status": "ok", "state_dir": str(root), "writable": root.is_dir()}


@router.get("/metrics")
def metrics(svc: Service) -> Response:
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)
