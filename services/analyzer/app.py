"""The analyzer FastAPI app: capacity planning for a provider's portal."""

from __future__ import annotations

from fastapi import FastAPI

from services.analyzer.api.routes import analyses, health, profiles
from services.analyzer.config import AnalyzerSettings
from services.analyzer.metrics import AnalyzerMetrics


def create_app(settings: AnalyzerSettings | None = None) -> FastAPI:
    settings = settings or AnalyzerSettings()
    app = FastAPI(title="Dialback analyzer", version="1")
    app.state.settings, app.state.metrics = settings, AnalyzerMetrics()
    for r in (health.router, profiles.router, analyses.router):
        app.include_router(r)
    return app
