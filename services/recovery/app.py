"""The recovery FastAPI app: routes, error mapping, /healthz and /metrics."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.recovery import metrics
from services.recovery.api.deps import Authenticator
from services.recovery.api.exports import router as exports_router
from services.recovery.api.routes import router
from services.recovery.config import RecoverySettings
from services.recovery.errors import RecoveryError
from services.recovery.instant.registry import ExportRegistry
from shared.nbd_tls import server_context
from services.recovery.service import Recovery
from services.recovery.usage import ImageUsage
from shared.journal import JournalError
from shared.licences import AllOn, LicenceView
from shared.objectstore import ObjectStore, ObjectStoreError
from shared.objectstore.cached import CachedObjectStore


def create_app(store: ObjectStore, auth: Authenticator, settings: RecoverySettings | None = None,
               emitter=None, licences: LicenceView | None = None) -> FastAPI:
    """``emitter``: where usage events go (default: Kafka when DIALBACK_RECOVERY_USAGE is true, else nowhere);
    ``licences``: what is switched on (default: every licence on; ``python -m services.recovery`` follows
    the licensing topic)."""
    settings = settings or RecoverySettings()
    if emitter is None and settings.recovery_usage:
        from shared.usage import UsageEmitter
        emitter = UsageEmitter(settings.kafka_bootstrap, "/dialback/recovery")
    usage = ImageUsage(emitter)
    recovery = Recovery(store, settings.bucket_prefix, settings.work_path(), settings.recovery_prefetch, usage=usage)
    # Exports plan twice (before and under their lease) and are asked for repeatedly: their planner reads
    # timeline entries and base documents through a cache of those immutable objects.
    cached = Recovery(CachedObjectStore(store), settings.bucket_prefix, settings.work_path(),
                      settings.recovery_prefetch, usage=usage)
    exports = ExportRegistry(cached, usage, host=settings.export_host, lease_ttl_s=settings.export_lease_ttl,
                             usage_interval=settings.recovery_usage_interval, max_exports=settings.export_max,
                             work_dir=str(settings.work_path()),
                             tls=server_context(settings.export_tls_dir) if settings.export_tls_dir else None)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        # Exports live in this process: close them (leases released, overlays deleted, time billed).
        exports.close_all()
        try:
            usage.flush()
        except Exception as exc:  # the events stay queued nowhere: say so, do not hang the shutdown
            logging.getLogger(__name__).error("usage events not delivered at shutdown: %s", exc)

    app = FastAPI(title="Dialback recovery", version="1", lifespan=lifespan)
    app.state.recovery = recovery
    app.state.exports = exports
    app.state.auth = auth
    app.state.licences = licences or AllOn()
    app.include_router(router)
    app.include_router(exports_router)

    @app.exception_handler(RecoveryError)
    async def recovery_error(request: Request, exc: RecoveryError) -> JSONResponse:
        metrics.REFUSED.labels(str(exc.status)).inc()
        return JSONResponse({"detail": str(exc), **getattr(exc, "extra", {})}, status_code=exc.status)

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
