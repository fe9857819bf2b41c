"""Ingest settings, from DIALBACK_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shared.auth import default_tenants_file
from shared.bodies import max_body_bytes
from shared.config import CommonSettings
from shared.tls import server_tls
from shared.tenancy import USAGE_TOPIC

DEFAULT_MAX_VOLUME_BYTES = 64 << 40  # 64 TiB


class IngestSettings(CommonSettings, server_tls("ingest")):
    ingest_host: str = Field("127.0.0.1", description="bind address (loopback, unless serving TLS or behind a TLS proxy)")
    ingest_port: int = Field(8100, ge=0, le=65535, description="HTTP port")
    tenants_file: Path | None = Field(None, description="tenants file; default $DIALBACK_HOME/tenants.json")
    writes_partitions: int = Field(3, ge=1, description="partitions of a new dialback.<tenant>.writes topic")
    replication: int = Field(1, ge=1, description="replication factor of new topics")
    produce_timeout_s: float = Field(10.0, gt=0, description="give up on a Kafka acknowledgement after this")
    ingest_writes_linger_ms: int = Field(10, ge=0, le=100, description="librdkafka linger of the writes "
                                         "producer: fuller produce requests, less CPU per MB in ingest and Kafka")
    ingest_control_linger_ms: int = Field(1, ge=0, le=100, description="librdkafka linger of the control "
                                          "producer (one small event per body, waited for before the answer)")
    retry_after_s: int = Field(5, ge=1, description="Retry-After sent with 503")
    ingest_reorder_wait_s: float = Field(5.0, ge=0, description="a body that arrives ahead of another body of "
                                         "its group still arriving waits this long for it before the gap is "
                                         "refused (409)")
    ingest_control_follow_s: float = Field(1.0, ge=0, description="how often to read retention's GroupBroken/"
                                           "GroupRepaired events from the control log (0 = never)")
    ingest_usage: bool | None = Field(None, description="emit ingest.bytes usage events (default: on with Kafka)")
    usage_topic: str = Field(USAGE_TOPIC, description="topic of usage events")
    ingest_max_volume_bytes: int = Field(DEFAULT_MAX_VOLUME_BYTES, ge=1, description="largest volume size a group "
                                         "may register (bytes); larger ones are refused with 422")

    ingest_max_inflight_bytes: int = Field(512 << 20, ge=1, description="request body bytes ingest holds at "
                                           "once, all tenants together; past it a body is answered 503 with "
                                           "Retry-After before it is buffered")
    ingest_max_inflight_bytes_per_tenant: int = Field(64 << 20, ge=1, description="request body bytes ingest "
                                                      "holds at once for one tenant (503 with Retry-After past it)")

    def inflight_caps(self) -> tuple[int, int]:
        """(all tenants, per tenant), checked at app start (a model validator's error would print every
        input, secrets included)."""
        largest = max_body_bytes(sealed=True)
        if self.ingest_max_inflight_bytes_per_tenant < largest:
            raise ValueError(f"DIALBACK_INGEST_MAX_INFLIGHT_BYTES_PER_TENANT must be at least {largest} (the "
                             "largest body), or no large body could ever be taken")
        if self.ingest_max_inflight_bytes < self.ingest_max_inflight_bytes_per_tenant:
            raise ValueError("DIALBACK_INGEST_MAX_INFLIGHT_BYTES must be at least "
                             "DIALBACK_INGEST_MAX_INFLIGHT_BYTES_PER_TENANT")
        return self.ingest_max_inflight_bytes, self.ingest_max_inflight_bytes_per_tenant

    def resolved_tenants_file(self) -> Path:
        return self.tenants_file or default_tenants_file()
