"""Real Kafka and MinIO for tests, started from the project's own deploy code.

Each server is started on free loopback ports in a temporary directory (or an
existing one named by env vars is used). With CI=true a server that cannot be
had fails the test; elsewhere it skips, naming why.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from deploy.local import kafka, minio
from deploy.local.process import Managed, StartError, free_port
from shared.config import default_cache
from shared.objectstore.minio import MinioObjectStore


def unavailable(what: str, err: Exception) -> None:
    msg = f"{what} is not available: {err}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


@dataclass
class KafkaServer:
    bootstrap: str
    managed: Managed | None = None
    tmp: Path | None = None
    sasl_ssl: kafka.SaslSsl | None = None  # set when clients must connect over SASL_SSL

    def security_env(self, user: str = "dialback", password: str | None = None) -> dict[str, str]:
        """DIALBACK_KAFKA_* variables of a client logging in as ``user`` (``password``: override, e.g. a wrong one)."""
        if self.sasl_ssl is None:
            return {}
        return {"DIALBACK_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "DIALBACK_KAFKA_SASL_MECHANISM": self.sasl_ssl.mechanism,
                "DIALBACK_KAFKA_SASL_USERNAME": user,
                "DIALBACK_KAFKA_SASL_PASSWORD": password if password is not None else self.sasl_ssl.users[user],
                "DIALBACK_KAFKA_SSL_CAFILE": str(self.sasl_ssl.tls.ca_pem)}

    def log_dir(self) -> Path:
        """The broker's data directory (its log segment files), for tests that look at what rests on disk."""
        assert self.tmp is not None, "an external Kafka's files are not here"
        return self.tmp / "logs"

    def stop(self) -> None:
        if self.managed:
            self.managed.stop()

    def start(self) -> None:
        if self.managed:
            self.managed.start()

    def kill(self) -> None:
        if self.managed:
            self.managed.kill()


@dataclass
class MinioServer:
    endpoint: str
    access_key: str
    secret_key: str
    managed: Managed | None = None
    tmp: Path | None = None
    env: dict = field(default_factory=dict)

    def store(self) -> MinioObjectStore:
        return MinioObjectStore(self.endpoint, self.access_key, self.secret_key)


def start_kafka() -> KafkaServer:
    if os.environ.get("DIALBACK_TEST_KAFKA_BOOTSTRAP"):
        return KafkaServer(os.environ["DIALBACK_TEST_KAFKA_BOOTSTRAP"])
    cache = default_cache()
    kafka.provision(cache)
    tmp = Path(tempfile.mkdtemp(prefix="dialback-test-kafka-"))
    port = free_port()
    managed = kafka.server(cache, tmp, port, free_port(), heap="384m", memory_limit=1536 << 20)  # as the stack
    managed.start(timeout=120)
    return KafkaServer(f"127.0.0.1:{port}", managed, tmp)


def start_kafka_sasl_ssl() -> KafkaServer:
    """A Kafka of its own whose only client listener is SASL_SSL (SCRAM-SHA-512) on loopback.

    Certificates: a throwaway CA (deploy.local.certs); users ``broker`` (inter-broker) and
    ``dialback`` (clients) with random passwords, created when the storage is formatted.
    """
    from deploy.local.certs import make_loopback_tls

    cache = default_cache()
    kafka.provision(cache)
    tmp = Path(tempfile.mkdtemp(prefix="dialback-test-kafka-sasl-"))
    tls = make_loopback_tls(tmp / "tls")
    sasl = kafka.SaslSsl(tls, {"broker": secrets.token_hex(16), "dialback": secrets.token_hex(16)})
    port = free_port()
    managed = kafka.server(cache, tmp, port, free_port(), heap="384m", memory_limit=1536 << 20, sasl_ssl=sasl)
    managed.start(timeout=120)
    return KafkaServer(f"127.0.0.1:{port}", managed, tmp, sasl)


def start_minio() -> MinioServer:
    if os.environ.get("DIALBACK_TEST_S3_ENDPOINT"):
        return MinioServer(os.environ["DIALBACK_TEST_S3_ENDPOINT"], os.environ["DIALBACK_TEST_S3_ACCESS_KEY"],
                           os.environ["DIALBACK_TEST_S3_SECRET_KEY"])
    cache = default_cache()
    tmp = Path(tempfile.mkdtemp(prefix="dialback-test-minio-"))
    port = free_port()
    access, secret = "test-" + secrets.token_hex(4), secrets.token_urlsafe(18)
    managed = minio.server(cache, tmp, port, free_port(), access, secret)
    managed.start(timeout=60)
    return MinioServer(f"127.0.0.1:{port}", access, secret, managed, tmp)


def cleanup(server) -> None:
    if server.managed:
        server.managed.stop()
    if server.tmp:
        shutil.rmtree(server.tmp, ignore_errors=True)


__all__ = ["KafkaServer", "MinioServer", "StartError", "start_kafka", "start_kafka_sasl_ssl", "start_minio", "cleanup",
           "unavailable"]
