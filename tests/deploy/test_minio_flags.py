"""How the local stack starts MinIO: no MD5 ETags unless strict S3 is asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.local import minio


@pytest.fixture
def fake_binary(monkeypatch, tmp_path) -> Path:
    exe = tmp_path / "minio"
    monkeypatch.setattr(minio, "provision", lambda cache, echo=print: exe)
    return exe


@pytest.mark.parametrize("value, strict", [("", False), ("false", False), ("true", True), ("1", True)])
def test_no_compat_unless_strict(monkeypatch, fake_binary, tmp_path, value, strict):
    monkeypatch.setenv("DIALBACK_STACK_MINIO_STRICT_S3", value)
    m = minio.server(tmp_path, tmp_path / "data", 19000, 19001, "user", "secret-secret")
    assert ("--no-compat" in m.argv) is not strict
    assert m.argv[:2] == [str(fake_binary), "server"]
    assert "127.0.0.1:19000" in m.argv  # loopback only
    assert m.env["MINIO_API_DELETE_CLEANUP_INTERVAL"] == "10s"


def test_explicit_strict_overrides_the_environment(monkeypatch, fake_binary, tmp_path):
    def argv(strict: bool) -> list[str]:
        return minio.server(tmp_path, tmp_path / "d", 19000, 19001, "u", "secret-secret", strict=strict).argv

    monkeypatch.setenv("DIALBACK_STACK_MINIO_STRICT_S3", "true")
    assert "--no-compat" in argv(strict=False)
    monkeypatch.delenv("DIALBACK_STACK_MINIO_STRICT_S3")
    assert "--no-compat" not in argv(strict=True)
