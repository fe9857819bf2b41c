"""Which image source and failback the service gets from its settings."""

from __future__ import annotations

from services.burst.app import build_engine
from services.burst.config import BurstSettings
from services.burst.images import FileImageSource
from services.burst.provider.memory import MemoryProvider
from services.burst.recovery_images import RecoveryImageSource


def _engine(monkeypatch, tmp_path, **env):
    for k in ("DIALBACK_S3_ENDPOINT", "DIALBACK_BURST_IMAGES_DIR", "DIALBACK_BURST_IMAGE_SOURCE"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    settings = BurstSettings(burst_state_dir=tmp_path / "state", burst_usage=False)
    return build_engine(settings, provider=MemoryProvider())


def test_object_store_settings_make_recovery_the_default_source_and_enable_failback(monkeypatch, tmp_path):
    e = _engine(monkeypatch, tmp_path, DIALBACK_S3_ENDPOINT="127.0.0.1:9")
    assert isinstance(e.images, RecoveryImageSource) and e.failback is not None


def test_an_images_dir_or_no_object_store_keeps_the_file_source(monkeypatch, tmp_path):
    e = _engine(monkeypatch, tmp_path, DIALBACK_S3_ENDPOINT="127.0.0.1:9", DIALBACK_BURST_IMAGES_DIR=str(tmp_path))
    assert isinstance(e.images, FileImageSource) and e.failback is not None
    e = _engine(monkeypatch, tmp_path)
    assert isinstance(e.images, FileImageSource) and e.failback is None


def test_the_source_can_be_forced(monkeypatch, tmp_path):
    e = _engine(monkeypatch, tmp_path, DIALBACK_BURST_IMAGE_SOURCE="recovery")
    assert isinstance(e.images, RecoveryImageSource)
