"""The metering HTTP API: usage (tenant and provider views, JSON/CSV), licences, credentials, health, metrics."""

from __future__ import annotations

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.metering import metrics  # noqa: F401  (registers the service metrics on /metrics)
from services.metering.api import credentials, licences, usage
from services.metering.api.deps import Authenticator
from services.metering.feed import BillingFeed
from shared.licences import LicenceBook


def create_app(feed: BillingFeed, book: LicenceBook, auth: Authenticator, admin_token: str | None,
               switch, health=lambda: {}) -> FastAPI:
    """``switch(tenant, feature, group, enabled) -> Licence`` publishes a licence change."""
    app = FastAPI(title="Dialback metering", version="1")
    app.state.feed, app.state.licences, app.state.auth = feed, book, auth
    app.state.admin_token, app.state.switch = admin_token, switch
    app.include_router(usage.router)
    app.include_router(licences.router)
    if hasattr(auth, "path"):  # a tenants file to manage (not for an in-memory authenticator)
        app.include_router(credentials.router)

    @app.get("/healthz")
    def healthz():
        return {"status": "ok", "lines_read": len(feed), **health()}

    @app.get("/metrics")
    def metrics():
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
