"""Metering settings (environment variables ``DIALBACK_METERING_*`` and the common ``DIALBACK_*``)."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from shared.config import CommonSettings
from shared.tls import is_loopback, server_tls
from shared.tenancy import BILLING_TOPIC, USAGE_TOPIC
from shared.usage import DLQ_TOPIC


class MeteringSettings(CommonSettings, server_tls("metering")):
    metering_host: str = Field("127.0.0.1", description="HTTP bind address (loopback only by default)")
    metering_port: int = Field(8104, description="HTTP port of the usage and licence API")
    metering_admin_token: SecretStr | None = Field(
        None, description="bearer token of the provider's view across tenants; unset = nobody has it")
    metering_group: str = "dialback-metering"
    metering_transactional_id: str = Field(
        "dialback-metering-0", description="Kafka transactional id; a second instance with the same id "
                                           "fences the first, so two never double count")
    usage_topic: str = USAGE_TOPIC
    billing_topic: str = BILLING_TOPIC
    dlq_topic: str = DLQ_TOPIC
    metering_state_topic: str = "dialback.metering.state"
    metering_lateness_s: float = Field(300.0, ge=0, description="an hour closes this long after it ends")
    metering_horizon_s: float = Field(48 * 3600.0, gt=0, description="dedupe ids kept this long; older events "
                                                                     "are rejected as too late")
    metering_max_future_s: float = Field(600.0, ge=0)
    metering_wall_clock: bool = Field(True, description="close hours by wall clock, not only by event time")
    metering_batch_max: int = Field(20000, ge=1, le=200000)
    metering_poll_s: float = Field(0.2, gt=0)
    metering_grace_s: float = Field(30 * 24 * 3600.0, ge=0, description="data kept after protection is "
                                                                        "switched off, then purged")
    metering_purge_interval_s: float = Field(3600.0, gt=0)
    metering_purge: bool = Field(True, description="run the purge job inside the service")
    metering_fault_exit_after: int = Field(
        0, ge=0, description="fault injection for tests: exit abruptly inside the Nth transaction, after "
                             "its records were produced and before it commits (0 = never)")

    @model_validator(mode="after")
    def _loopback_unless_tls(self) -> "MeteringSettings":
        # The API carries billing data and the provider's admin token: never plain HTTP off the host.
        if not is_loopback(self.metering_host) and not self.tls_enabled:
            raise ValueError(f"DIALBACK_METERING_HOST={self.metering_host} is not a loopback address: serve "
                             "HTTPS there (set DIALBACK_METERING_TLS_CERT_FILE and DIALBACK_METERING_TLS_KEY_FILE) "
                             "or put a TLS proxy in front")
        return self

    def policy(self):
        from services.metering.aggregator import Policy

        return Policy(lateness=self.metering_lateness_s, horizon=self.metering_horizon_s,
                      max_future=self.metering_max_future_s, wall_clock=self.metering_wall_clock)
