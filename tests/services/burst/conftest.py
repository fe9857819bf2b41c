"""Burst fixtures: a real local OpenStack (session), raw images, an in-memory cloud, tenant tokens."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.burst.images import FileImageSource
from services.burst.provider.memory import MemoryProvider
from shared.auth import OPERATE, create_tenant
from tests.fixtures_openstack import openstack_cloud  # noqa: F401 - session fixture re-exported
from tests.services.burst.rawimage import RawImage, put_point

TENANT = "acme"


@pytest.fixture(scope="session")
def image_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("burst-images")


@pytest.fixture(scope="session")
def small_image(image_root: Path) -> RawImage:
    """A 64 MiB ext4 raw image at point 'p1' of acme/g1/disk0 (plus an older 'p0')."""
    put_point(image_root, TENANT, "g1", "disk0", "p0", 16 << 20)
    return put_point(image_root, TENANT, "g1", "disk0", "p1", 64 << 20)


@pytest.fixture
def image_source(image_root: Path, small_image: RawImage) -> FileImageSource:
    return FileImageSource(image_root)


@pytest.fixture
def memory_provider() -> MemoryProvider:
    return MemoryProvider()


@dataclass(frozen=True)
class Tokens:
    """A tenants file with acme and globex, their tokens and an admin token (as the burst service reads them)."""

    tenants_file: Path
    acme: str
    globex: str
    admin: str

    def env(self) -> dict[str, str]:
        return {"DIALBACK_TENANTS_FILE": str(self.tenants_file), "DIALBACK_BURST_ADMIN_TOKEN": self.admin}

    def settings(self) -> dict:
        return {"tenants_file": self.tenants_file, "burst_admin_token": self.admin}

    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def tokens(tmp_path_factory) -> Tokens:
    path = tmp_path_factory.mktemp("burst-auth") / "tenants.json"
    return Tokens(path, create_tenant(path, TENANT, scopes=[OPERATE]),
                  create_tenant(path, "globex", scopes=[OPERATE]), secrets.token_urlsafe(32))
