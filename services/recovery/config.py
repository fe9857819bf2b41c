"""Recovery settings (environment variables prefixed DIALBACK_)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, model_validator

from shared.config import CommonSettings, default_home
from shared.tls import server_tls


class RecoverySettings(CommonSettings, server_tls("recovery")):
    recovery_host: str = Field("127.0.0.1", description="bind address of the recovery API")
    recovery_port: int = Field(8102, ge=1, le=65535)
    recovery_work_dir: Path | None = Field(None, description="where images are built; default $DIALBACK_HOME/recovery")
    recovery_prefetch: int = Field(4, ge=1, le=32, description="segments fetched ahead while applying")
    tenants_file: Path | None = Field(None, description="default $DIALBACK_HOME/tenants.json")
    home: Path = Field(default_factory=default_home)
    recovery_usage: bool = Field(False, description="emit usage events (recovery.image_bytes, "
                                 "instant_access.seconds) to Kafka at DIALBACK_KAFKA_BOOTSTRAP")
    recovery_usage_interval: float = Field(3600.0, gt=0, description="bill open exports at least this often (s)")
    export_lease_ttl: float = Field(600.0, gt=0, description="TTL of an export's lease; renewed at a third of it")
    export_max: int = Field(16, ge=1, le=1024, description="exports open at once on this recovery service")
    export_host: str = Field("127.0.0.1", description="bind address of instant-access NBD servers")
    export_tls_dir: Path | None = Field(None, description="ca-cert.pem, server-cert.pem, server-key.pem "
                                        "(`dialback agent nbd-certs`): exports then require mutual TLS")

    @model_validator(mode="after")
    def _exports_off_loopback_need_tls(self) -> "RecoverySettings":
        try:
            loopback = self.export_host == "localhost" or ipaddress.ip_address(self.export_host).is_loopback
        except ValueError:
            loopback = False
        if not loopback and self.export_tls_dir is None:
            raise ValueError(f"DIALBACK_EXPORT_HOST={self.export_host} is reachable from other hosts: set "
                             "DIALBACK_EXPORT_TLS_DIR too (an export's name alone would cross the network in "
                             "clear)")
        return self

    def tenants_path(self) -> Path:
        return self.tenants_file or self.home / "tenants.json"

    def work_path(self) -> Path:
        return self.recovery_work_dir or self.home / "recovery"
