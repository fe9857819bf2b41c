"""Analyzer service settings, from DIALBACK_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from shared.config import CommonSettings, default_home
from shared.tls import server_tls


class AnalyzerSettings(CommonSettings, server_tls("analyzer")):
    analyzer_host: str = Field("127.0.0.1", description="bind address (loopback, unless serving TLS or behind a TLS proxy)")
    analyzer_port: int = Field(8490, ge=0, le=65535, description="HTTP port")
    analyzer_profile_dir: Path = Field(default_factory=lambda: default_home() / "profiles",
                                       description="where uploaded profiles are kept and analyses read them")
    analyzer_max_upload_mb: int = Field(512, ge=1, description="largest profile accepted by upload (MiB)")
    analyzer_token: SecretStr | None = Field(None, description="if set, requests need 'Authorization: Bearer <it>'")
