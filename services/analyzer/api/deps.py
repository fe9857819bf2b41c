"""Route dependencies: settings, metrics, the optional bearer token, safe profile paths."""

from __future__ import annotations

import hmac
import re
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from services.analyzer.config import AnalyzerSettings
from services.analyzer.metrics import AnalyzerMetrics

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _settings(request: Request) -> AnalyzerSettings:
    return request.app.state.settings


def _metrics(request: Request) -> AnalyzerMetrics:
    return request.app.state.metrics


def check_token(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    want = request.app.state.settings.analyzer_token
    if want is None:
        return
    got = (authorization or "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(got.encode(), want.get_secret_value().encode()):
        raise HTTPException(401, "missing or wrong bearer token (Authorization: Bearer <DIALBACK_ANALYZER_TOKEN>)")


def profile_path(settings: AnalyzerSettings, name: str) -> Path:
    """The file for a profile name; names are plain file names, so nothing outside the directory is reachable."""
    if not _NAME.match(name):
        raise HTTPException(422, f"profile name {name!r} must be 1-128 letters, digits, '.', '_' or '-' "
                                 "and not start with a dot")
    return settings.analyzer_profile_dir / name


Settings = Annotated[AnalyzerSettings, Depends(_settings)]
Metrics = Annotated[AnalyzerMetrics, Depends(_metrics)]
Authorized = Depends(check_token)
