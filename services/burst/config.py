"""Burst settings (environment variables prefixed DIALBACK_)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from shared.auth import default_tenants_file
from shared.bearer import admin_token_value
from shared.config import CommonSettings, default_home
from shared.tls import server_tls


class BurstSettings(CommonSettings, server_tls("burst")):
    burst_host: str = "127.0.0.1"
    burst_port: int = 8106
    burst_admin_token: SecretStr | None = Field(
        None, description="bearer token of the provider (acts on every tenant, lists across tenants); "
                          "unset or blank = nobody has it; a placeholder is refused")
    tenants_file: Path | None = Field(None, description="tenant tokens; default $DIALBACK_HOME/tenants.json")
    burst_state_dir: Path = Field(default_factory=lambda: default_home() / "burst",
                                  description="event logs of operations")
    burst_image_source: Literal["auto", "recovery", "files"] = Field(
        "auto", description="recovery: synthesize images from MinIO; files: BURST_IMAGES_DIR; auto: recovery "
                            "when DIALBACK_S3_ENDPOINT is set and BURST_IMAGES_DIR is not")
    burst_images_dir: Path = Field(default_factory=lambda: default_home() / "burst" / "images",
                                   description="raw images for FileImageSource (tests, demos)")
    burst_work_dir: Path = Field(default_factory=lambda: default_home() / "burst" / "work",
                                 description="where recovery images are built before upload (then deleted)")
    burst_failback_root: Path | None = Field(
        None, description="tenants may fail back only to disks under <root>/<tenant>/; unset: only the admin token")
    burst_failback_allowed_hosts: str = Field(
        "", description="comma-separated host:port (or host, any port) of reverse taps the burst host may "
                        "contact during a failback (the tap's control API); empty: failback contacts none")
    burst_agent_token_file: Path | None = Field(
        None, description="bearer token of the reverse tap's TCP control API (its <spool>/<group>.control.token), "
                          "sent on failback's calls to --agent-url")
    burst_default_flavor: str | None = Field(None, description="else: the smallest flavor that fits the image")
    burst_prod_network: str = "dialback-prod"
    burst_drtest_cidr: str = "10.252.0.0/24"
    burst_boot_timeout: float = 300.0
    burst_tick_seconds: float = 5.0
    burst_usage_interval: float = 3600.0
    burst_usage: bool = Field(True, description="emit usage events to Kafka")

    os_auth_url: str = "http://127.0.0.1:5000/v3"
    os_username: str = "admin"
    os_password: SecretStr = SecretStr("dialback-local-admin")
    os_project_name: str = "admin"
    os_region_name: str = "RegionOne"
    os_user_domain_name: str = "Default"
    os_project_domain_name: str = "Default"

    def admin_token(self) -> str | None:
        """Checked at app start, not as a field validator: a validation error would echo the value."""
        return admin_token_value(self.burst_admin_token, "DIALBACK_BURST_ADMIN_TOKEN")

    def resolved_tenants_file(self) -> Path:
        return self.tenants_file or default_tenants_file()

    def has_object_store(self) -> bool:
        return "s3_endpoint" in self.model_fields_set

    def image_source_kind(self) -> str:
        if self.burst_image_source != "auto":
            return self.burst_image_source
        explicit_files = "burst_images_dir" in self.model_fields_set
        return "recovery" if self.has_object_store() and not explicit_files else "files"
