"""Burst fixtures: a real local OpenStack (session), raw images, an in-memory cloud."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.burst.images import FileImageSource
from services.burst.provider.memory import MemoryProvider
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
