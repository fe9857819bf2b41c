"""Analyzer service settings, from DIALBACK_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from shared.auth import default_tenants_file
from shared.bearer import admin_token_value
from shared.config import CommonSettings, default_home
from shared.tls import server_tls


class AnalyzerSettings(CommonSettings, server_tls("analyzer")):
    analyzer_host: str = Field("127.0.0.1", description="bind address (loopback, unless serving TLS or behind a TLS proxy)")
    analyzer_port: int = Field(8490, ge=0, le=65535, description="HTTP port")
    analyzer_profile_dir: Path = Field(default_factory=lambda: default_home() / "profiles",
                                       description="uploaded profiles, one directory per tenant (<dir>/<tenant>/)")
    analyzer_max_upload_mb: int = Field(512, ge=1, description="largest profile accepted by upload (MiB)")
    analyzer_max_profiles_per_tenant: int = Field(100, ge=1, description="profiles one tenant may keep "
                                                  "(uploads in progress included); replacing one is always fine")
    analyzer_token: SecretStr | None = Field(
        None, description="the provider's admin token (acts for any tenant with ?tenant=<name>); tenants use "
                          "their own tokens from the tenants file; unset or blank = nobody is admin")
    tenants_file: Path | None = Field(None, description="tenant tokens; default $DIALBACK_HOME/tenants.json")

    def admin_token(self) -> str | None:
        """Checked at app start, not as a field validator: a validation error would echo the value."""
        return admin_token_value(self.analyzer_token, "DIALBACK_ANALYZER_TOKEN")

    def resolved_tenants_file(self) -> Path:
        return self.tenants_file or default_tenants_file()
