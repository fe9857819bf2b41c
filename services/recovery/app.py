"""The recovery FastAPI app: routes, error mapping, /healthz and /metrics."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.recovery import metrics
from services.recovery.api.deps import Authenticator
from services.recovery.api.routes import router
from services.recovery.config import RecoverySettings
from services.recovery.errors import RecoveryError
from services.recovery.service import Recovery
from shared.journal import JournalError
from shared.objectstore import ObjectStore, ObjectStoreError


def create_app(store: ObjectStore, auth: Authenticator, settings: RecoverySettings | None = None) -> FastAPI:
    settings = settings or RecoverySettings()
    app = FastAPI(title="Dialback recovery", version="1")
    app.state.recovery = Recovery(store, settings.bucket_prefix, settings.work_path(), settings.recovery_prefetch)
    app.state.auth = auth
    app.include_router(router)

    @app.exception_handler(RecoveryError)
    async def recovery_error(request: Request, exc: RecoveryError) -> JSONResponse:
        metrics.REFUSED.labels(str(exc.status)).inc()
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError) -> JSONResponse:
        # 422 is reserved for points outside the retained range; a malformed request is 400.
        metrics.REFUSED.labels("400").inc()
        return JSONResponse({"detail": "malformed request", "errors": jsonable_errors(exc)}, status_code=400)

    @app.exception_handler(JournalError)
    async def journal_error(request: Request, exc: JournalError) -> JSONResponse:
        return JSONResponse({"detail": f"the journal is damaged: {exc}; no image was produced"}, status_code=500)

    @app.exception_handler(ObjectStoreError)
    async def store_error(request: Request, exc: ObjectStoreError) -> JSONResponse:
        return JSONResponse({"detail": f"object store unavailable: {exc}; retry later"}, status_code=503)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def jsonable_errors(exc: RequestValidationError) -> list[dict]:
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
