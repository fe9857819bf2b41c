"""How every Dialback process authenticates to Kafka and encrypts the connection (one place).

Settings (environment, prefix ``DIALBACK_KAFKA_``)::

    DIALBACK_KAFKA_SECURITY_PROTOCOL   PLAINTEXT (default) | SSL | SASL_PLAINTEXT | SASL_SSL
    DIALBACK_KAFKA_SASL_MECHANISM      SCRAM-SHA-512 (default) | SCRAM-SHA-256 | PLAIN
    DIALBACK_KAFKA_SASL_USERNAME
    DIALBACK_KAFKA_SASL_PASSWORD       or DIALBACK_KAFKA_SASL_PASSWORD_FILE (a file holding only the password)
    DIALBACK_KAFKA_SSL_CAFILE          PEM bundle that signed the brokers' certificates (default: system CAs)

:func:`kafka_security` reads them when a client is made, and both client
libraries get them from here: confluent-kafka (:meth:`KafkaSecurity.librdkafka`,
merged into every config by shared.bus.kafka) and faust/aiokafka
(:meth:`KafkaSecurity.faust_credentials`, retention). Broker certificates are
always verified, host name included. A bad combination raises an error that
names the variable; the password never appears in reprs, logs or errors.
"""

from __future__ import annotations

import ssl
from enum import Enum
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.errors import DialbackError


class KafkaSecurityError(DialbackError):
    """The DIALBACK_KAFKA_* security settings are incomplete or contradict each other."""


class Protocol(str, Enum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class Mechanism(str, Enum):
    SCRAM_SHA_512 = "SCRAM-SHA-512"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    PLAIN = "PLAIN"


class KafkaSecurity(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DIALBACK_KAFKA_", extra="ignore")

    security_protocol: Protocol = Field(Protocol.PLAINTEXT, description="how clients connect to the brokers")
    sasl_mechanism: Mechanism = Field(Mechanism.SCRAM_SHA_512, description="SASL mechanism (SASL_* protocols)")
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = Field(None, description="file holding the SASL password (instead of "
                                            "DIALBACK_KAFKA_SASL_PASSWORD)")
    ssl_cafile: Path | None = Field(None, description="CA bundle (PEM) of the brokers' certificates")

    @property
    def sasl(self) -> bool:
        return self.security_protocol in (Protocol.SASL_PLAINTEXT, Protocol.SASL_SSL)

    @property
    def tls(self) -> bool:
        return self.security_protocol in (Protocol.SSL, Protocol.SASL_SSL)

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSecurity:
        if self.sasl_password is not None and self.sasl_password_file is not None:
            raise ValueError("set DIALBACK_KAFKA_SASL_PASSWORD or DIALBACK_KAFKA_SASL_PASSWORD_FILE, not both")
        if self.sasl and (not self.sasl_username or (self.sasl_password is None and self.sasl_password_file is None)):
            raise ValueError(f"DIALBACK_KAFKA_SECURITY_PROTOCOL={self.security_protocol.value} needs "
                             "DIALBACK_KAFKA_SASL_USERNAME and DIALBACK_KAFKA_SASL_PASSWORD (or _PASSWORD_FILE)")
        if self.ssl_cafile is not None and not self.ssl_cafile.is_file():
            raise ValueError(f"DIALBACK_KAFKA_SSL_CAFILE={self.ssl_cafile} is not a file")
        return self

    def password(self) -> str:
        if self.sasl_password is not None:
            return self.sasl_password.get_secret_value()
        assert self.sasl_password_file is not None
        try:
            return self.sasl_password_file.read_text().strip()
        except OSError as err:
            raise KafkaSecurityError(f"cannot read DIALBACK_KAFKA_SASL_PASSWORD_FILE={self.sasl_password_file}: "
                                     f"{err.strerror}") from None

    def librdkafka(self) -> dict:
        """confluent-kafka (librdkafka) settings; empty for PLAINTEXT."""
        conf: dict = {}
        if self.security_protocol is Protocol.PLAINTEXT:
            return conf
        conf["security.protocol"] = self.security_protocol.value.lower()
        if self.tls:
            conf["ssl.endpoint.identification.algorithm"] = "https"
            conf["enable.ssl.certificate.verification"] = True
            if self.ssl_cafile is not None:
                conf["ssl.ca.location"] = str(self.ssl_cafile)
        if self.sasl:
            conf.update({"sasl.mechanism": self.sasl_mechanism.value, "sasl.username": self.sasl_username,
                         "sasl.password": self.password()})
        return conf

    def ssl_context(self) -> ssl.SSLContext:
        """A verifying client context (host name checked) trusting DIALBACK_KAFKA_SSL_CAFILE or the system CAs."""
        return ssl.create_default_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None)

    def faust_credentials(self):
        """``broker_credentials`` for faust.App (aiokafka underneath); None for PLAINTEXT."""
        import faust

        if self.security_protocol is Protocol.PLAINTEXT:
            return None
        if self.security_protocol is Protocol.SSL:
            return faust.SSLCredentials(self.ssl_context())
        if self.security_protocol is Protocol.SASL_PLAINTEXT:
            # faust picks SASL_PLAINTEXT when no context is given
            return faust.SASLCredentials(username=self.sasl_username, password=self.password(),
                                         mechanism=self.sasl_mechanism.value)
        return faust.SASLCredentials(username=self.sasl_username, password=self.password(),
                                     mechanism=self.sasl_mechanism.value, ssl_context=self.ssl_context())


def kafka_security() -> KafkaSecurity:
    """The DIALBACK_KAFKA_* security settings of this process (read now, so a test's environment counts)."""
    try:
        return KafkaSecurity()
    except ValidationError as err:
        problems = "; ".join((f"DIALBACK_KAFKA_{'_'.join(map(str, e['loc'])).upper()}: " if e["loc"] else "")
                             + e["msg"].removeprefix("Value error, ") for e in err.errors())
        raise KafkaSecurityError(f"Kafka security settings are invalid ({problems}); fix the DIALBACK_KAFKA_* "
                                 "variables") from None
