"""Retention settings (environment variables prefixed DIALBACK_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shared.config import CommonSettings, default_home
from shared.tenancy import USAGE_TOPIC


class RetentionSettings(CommonSettings):
    retention_app_id: str = Field("dialback-retention", description="Kafka consumer group / faust app id")
    retention_segment_bytes: int = Field(8 << 20, ge=64 << 10, description="flush a group's segment at this size")
    retention_segment_age: float = Field(1.0, gt=0, le=4.0,
                                         description="flush a group's segment at this age (s); RPO lag budget is 5 s")
    retention_inflight_segments: int = Field(2, ge=1, le=8, description="segment uploads pending per group while "
                                             "it keeps reading (timeline entries and acks stay in order)")
    retention_compress: bool = Field(True, description="re-encode raw DATA payloads with zstd when it saves 1/8")
    retention_rescan_interval: float = Field(10.0, gt=0, description="how often to look for new tenants (s)")
    retention_web_port: int = Field(6066, ge=0, le=65535, description="/healthz and /metrics on 127.0.0.1")
    retention_session_timeout: float = Field(10.0, description="Kafka consumer session timeout (s)")
    retention_fetch_bytes: int = Field(16 << 20, ge=2 << 20, description="max bytes per partition per fetch")
    retention_job_interval: float = Field(300.0, ge=0, description="run rollup + GC every this many seconds "
                                          "(0 = never; policies are read on every run)")
    retention_chunk_size: int = Field(1 << 20, ge=4096, le=64 << 20,
                                      description="base image chunk size in bytes (new groups; a group keeps its size)")
    retention_chunk_grace: float = Field(86400.0, ge=0, description="GC never sweeps a chunk written less than "
                                         "this many seconds ago (must exceed the longest rollup; see chunk_grace_s)")
    retention_usage: bool = Field(False, description="emit storage.logical_bytes / storage.stored_bytes (hourly per "
                                  "group) and protection.volume_seconds to the usage topic from the retention job")
    retention_usage_catchup_hours: int = Field(3, ge=1, le=47, description="complete hours of volume-seconds "
                                               "re-sent after a restart (deterministic ids: counted once)")
    usage_topic: str = Field(USAGE_TOPIC, description="Kafka topic of usage events (metering reads it)")
    tenants_file: Path | None = Field(None, description="default $DIALBACK_HOME/tenants.json")
    home: Path = Field(default_factory=default_home)

    def chunk_grace_s(self) -> float:
        """The chunk grace GC uses: at least two job intervals, so a rollup run by the previous job (or by
        another process, e.g. ``dialback retention run``, since the last job) is never raced. A rollup
        stores a base's chunks before the base document that references them; a rollup that ran longer
        than the grace could lose fresh chunks to a GC in another process, so the job warns when one
        takes more than half of it (services/retention/job.py)."""
        return max(self.retention_chunk_grace, 2 * self.retention_job_interval)

    def tenants_path(self) -> Path:
        return self.tenants_file or self.home / "tenants.json"
