"""One world for the package: the real services on the session's Kafka and MinIO, tenants A and B, A seeded."""

from __future__ import annotations

import pytest

from bench.securitylib.world import start_world


@pytest.fixture(scope="package")
def world(stack_env, tmp_path_factory):
    w = start_world(stack_env, tmp_path_factory.mktemp("security") / "home")
    yield w
    w.stop()
