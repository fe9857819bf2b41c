"""Settings shared by every Dialback process.

Each service's ``config.py`` subclasses :class:`CommonSettings`; every field
is read from an environment variable prefixed ``DIALBACK_`` (for example
``DIALBACK_KAFKA_BOOTSTRAP``). A bad value raises an error naming the variable.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.tenancy import LICENSING_TOPIC


def default_home() -> Path:
    """Where the local stack keeps state, logs and the generated env file."""
    return Path(os.environ.get("DIALBACK_HOME", Path.home() / ".local" / "share" / "dialback"))


def default_cache() -> Path:
    """Where downloads and builds are cached (reused by every checkout)."""
    base = os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))
    return Path(os.environ.get("DIALBACK_CACHE", Path(base) / "dialback"))


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DIALBACK_", extra="ignore")

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers")
    s3_endpoint: str = Field("127.0.0.1:9000", description="MinIO/S3 endpoint host:port")
    s3_access_key: str = "dialback"
    s3_secret_key: SecretStr = SecretStr("dialback-dev-secret")
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    bucket_prefix: str = Field("dialback-", description="tenant buckets are <prefix><tenant>")
    log_level: str = "INFO"
    licensing_topic: str = Field(LICENSING_TOPIC, description="compacted topic of licence switches (metering "
                                 "writes it; ingest, recovery and burst enforce it)")
