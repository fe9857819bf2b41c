"""Tenants file and bearer-token authentication."""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest

from shared.auth import (TenantAuth, TenantExists, create_tenant, default_tenants_file, read_tenants,
                         token_digest)
from shared.errors import InvalidName


def test_create_stores_only_the_digest(tmp_path):
    path = tmp_path / "sub" / "tenants.json"
    token = create_tenant(path, "acme")
    raw = path.read_text()
    assert token not in raw
    doc = json.loads(raw)
    assert doc == {"tenants": {"acme": {"token_sha256": token_digest(token)}}}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(token) >= 40


def test_authenticate_maps_token_to_its_tenant(tmp_path):
    path = tmp_path / "tenants.json"
    ta, tb = create_tenant(path, "acme"), create_tenant(path, "globex")
    auth = TenantAuth(path)
    assert auth.authenticate(ta) == "acme"
    assert auth.authenticate(tb) == "globex"
    assert auth.authenticate(ta + "x") is None
    assert auth.authenticate("") is None and auth.authenticate(None) is None
    assert auth.authenticate(token_digest(ta)) is None  # the digest is not a token
    assert auth.tenants() == ["acme", "globex"]


def test_new_tenant_seen_without_restart(tmp_path):
    path = tmp_path / "tenants.json"
    auth = TenantAuth(path)
    assert auth.tenants() == []  # no file yet: nobody
    token = create_tenant(path, "acme")
    assert auth.authenticate(token) == "acme"
    t2 = create_tenant(path, "initech")
    assert auth.authenticate(t2) == "initech"
    path.unlink()
    assert auth.authenticate(token) is None


def test_duplicate_and_invalid_names(tmp_path):
    path = tmp_path / "tenants.json"
    create_tenant(path, "acme")
    with pytest.raises(TenantExists, match="already exists"):
        create_tenant(path, "acme")
    for bad in ("A", "ac", "Acme", "a--b", "dialback.x", "-ab"):
        with pytest.raises(InvalidName):
            create_tenant(path, bad)
    assert list(read_tenants(path)) == ["acme"]


def test_broken_file_keeps_last_good_view(tmp_path, caplog):
    path = tmp_path / "tenants.json"
    token = create_tenant(path, "acme")
    auth = TenantAuth(path)
    assert auth.authenticate(token) == "acme"
    path.write_text("{not json")
    assert auth.authenticate(token) == "acme"
    assert "not valid" in caplog.text


def test_concurrent_creators_lose_nobody(tmp_path):
    path = tmp_path / "tenants.json"
    tokens: dict[str, str] = {}

    def make(i: int) -> None:
        tokens[f"tenant-{i:02d}"] = create_tenant(path, f"tenant-{i:02d}")

    threads = [threading.Thread(target=make, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    auth = TenantAuth(path)
    assert auth.tenants() == sorted(tokens)
    assert all(auth.authenticate(tok) == name for name, tok in tokens.items())


def test_default_path_follows_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("DIALBACK_TENANTS_FILE", raising=False)
    monkeypatch.setenv("DIALBACK_HOME", str(tmp_path / "home"))
    assert default_tenants_file() == tmp_path / "home" / "tenants.json"
    monkeypatch.setenv("DIALBACK_TENANTS_FILE", str(tmp_path / "t.json"))
    assert default_tenants_file() == tmp_path / "t.json"
