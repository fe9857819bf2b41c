"""Session fixtures: a real Kafka and a real MinIO on loopback (see tests/servers.py)."""

from __future__ import annotations

import pytest

from tests.servers import KafkaServer, MinioServer, StartError, cleanup, start_kafka, start_minio, unavailable


@pytest.fixture(scope="session")
def kafka_server() -> KafkaServer:
    try:
        server = start_kafka()
    except (StartError, OSError) as err:
        unavailable("Kafka", err)
    yield server
    cleanup(server)


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_server: KafkaServer) -> str:
    return kafka_server.bootstrap


@pytest.fixture(scope="session")
def minio_server() -> MinioServer:
    try:
        server = start_minio()
    except (StartError, OSError) as err:
        unavailable("MinIO", err)
    yield server
    cleanup(server)


@pytest.fixture(scope="session")
def minio_store(minio_server: MinioServer):
    return minio_server.store()


@pytest.fixture(scope="session")
def minio_settings(minio_server: MinioServer) -> dict[str, str]:
    return {
        "DIALBACK_S3_ENDPOINT": minio_server.endpoint,
        "DIALBACK_S3_ACCESS_KEY": minio_server.access_key,
        "DIALBACK_S3_SECRET_KEY": minio_server.secret_key,
    }


@pytest.fixture(scope="session")
def stack_env(kafka_bootstrap: str, minio_settings: dict[str, str]) -> dict[str, str]:
    """DIALBACK_* variables naming the test servers, for subprocesses and Settings."""
    return {"DIALBACK_KAFKA_BOOTSTRAP": kafka_bootstrap, **minio_settings}
