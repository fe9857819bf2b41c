"""The analyzer FastAPI app: capacity planning for a provider's portal."""

from __future__ import annotations

from fastapi import FastAPI

from services.analyzer.api.routes import analyses, health, profiles
from services.analyzer.config import AnalyzerSettings
from services.analyzer.metrics import AnalyzerMetrics
from services.analyzer.profiles import ProfileStore
from shared.auth import TenantAuth
from shared.bearer import Authenticator


def create_app(settings: AnalyzerSettings | None = None, auth: Authenticator | None = None) -> FastAPI:
    """Every /v1 route needs a bearer token (shared.bearer): a tenant's from the tenants file acts on its
    own profiles, the provider's admin token (DIALBACK_ANALYZER_TOKEN) on the ?tenant= it names."""
    settings = settings or AnalyzerSettings()
    admin_token = settings.admin_token()  # a placeholder is refused before anything starts
    app = FastAPI(title="Dialback analyzer", version="1")
    app.state.settings, app.state.metrics = settings, AnalyzerMetrics()
    app.state.auth = auth or TenantAuth(settings.resolved_tenants_file())
    app.state.admin_token = admin_token
    app.state.profiles = ProfileStore(settings.analyzer_profile_dir, settings.analyzer_max_upload_mb << 20,
                                      settings.analyzer_max_profiles_per_tenant)
    for r in (health.router, profiles.router, analyses.router):
        app.include_router(r)
    return app
