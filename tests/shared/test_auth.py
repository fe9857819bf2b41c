"""Tenants file and bearer-token authentication: scopes, the version 1 file, rotation and revocation."""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest

from shared.auth import (INGEST, OPERATE, PROVIDER, AuthError, TenantAuth, TenantExists, UnknownCredential,
                         UnknownTenant, create_tenant, default_tenants_file, issue, list_credentials, read_tenants,
                         revoke, rotate, token_digest)
from shared.errors import InvalidName


def tenant_of(auth: TenantAuth, token: str | None) -> str | None:
    who = auth.identify(token)
    return who.tenant if who else None


def test_create_stores_only_the_digest(tmp_path):
    path = tmp_path / "sub" / "tenants.json"
    token = create_tenant(path, "acme")
    raw = path.read_text()
    assert token not in raw
    doc = json.loads(raw)
    [cred] = doc["tenants"]["acme"]["credentials"]
    assert doc["version"] == 2 and cred["sha256"] == token_digest(token) and cred["scopes"] == [INGEST]
    assert cred["not_after"] is None and cred["revoked"] is None and cred["id"].startswith("c-")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(token) >= 40


def test_authenticate_maps_token_to_its_tenant(tmp_path):
    path = tmp_path / "tenants.json"
    ta, tb = create_tenant(path, "acme"), create_tenant(path, "globex")
    auth = TenantAuth(path)
    assert tenant_of(auth, ta) == "acme"
    assert tenant_of(auth, tb) == "globex"
    assert tenant_of(auth, ta + "x") is None
    assert tenant_of(auth, "") is None and tenant_of(auth, None) is None
    assert tenant_of(auth, token_digest(ta)) is None  # the digest is not a token
    assert auth.tenants() == ["acme", "globex"]


def test_new_tenant_seen_without_restart(tmp_path):
    path = tmp_path / "tenants.json"
    auth = TenantAuth(path)
    assert auth.tenants() == []  # no file yet: nobody
    token = create_tenant(path, "acme")
    assert tenant_of(auth, token) == "acme"
    t2 = create_tenant(path, "initech")
    assert tenant_of(auth, t2) == "initech"
    path.unlink()
    assert tenant_of(auth, token) is None


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
    assert tenant_of(auth, token) == "acme"
    path.write_text("{not json")
    assert tenant_of(auth, token) == "acme"
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
    assert all(tenant_of(auth, tok) == name for name, tok in tokens.items())


def test_default_path_follows_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("DIALBACK_TENANTS_FILE", raising=False)
    monkeypatch.setenv("DIALBACK_HOME", str(tmp_path / "home"))
    assert default_tenants_file() == tmp_path / "home" / "tenants.json"
    monkeypatch.setenv("DIALBACK_TENANTS_FILE", str(tmp_path / "t.json"))
    assert default_tenants_file() == tmp_path / "t.json"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_version_1_file_still_works_with_every_tenant_scope(tmp_path):
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps({"tenants": {"acme": {"token_sha256": token_digest("old-token-of-acme")}}}))
    who = TenantAuth(path).identify("old-token-of-acme")
    assert who.tenant == "acme" and who.scopes == {INGEST, OPERATE} and who.credential == "legacy"
    # the next write keeps it, in the new form, beside the new credential
    new = issue(path, "acme", [OPERATE])
    auth = TenantAuth(path)
    assert auth.identify("old-token-of-acme").scopes == {INGEST, OPERATE}
    assert auth.identify(new.token).scopes == {OPERATE}
    assert "token_sha256" not in path.read_text()


def test_scopes_are_checked_when_issued(tmp_path):
    path = tmp_path / "tenants.json"
    create_tenant(path, "acme")
    with pytest.raises(AuthError, match="not valid for a tenant credential"):
        issue(path, "acme", [PROVIDER])
    with pytest.raises(AuthError, match="not valid for a provider credential"):
        issue(path, None, [OPERATE])
    with pytest.raises(AuthError, match="choose from"):
        issue(path, "acme", ["everything"])
    with pytest.raises(UnknownTenant, match="dialback tenant create nobody"):
        issue(path, "nobody", [OPERATE])
    p = issue(path, None, [PROVIDER], label="billing team")
    who = TenantAuth(path).identify(p.token)
    assert who.tenant is None and who.scopes == {PROVIDER}


def test_rotation_overlap_then_the_old_token_stops(tmp_path):
    path, clock = tmp_path / "tenants.json", Clock()
    old_token = create_tenant(path, "acme", clock=clock)
    [old] = list_credentials(path, "acme")
    auth = TenantAuth(path, clock=clock)
    new = rotate(path, "acme", old.id, overlap_s=600, clock=clock)
    assert new.credential.scopes == old.scopes and new.credential.id != old.id
    clock.now += 599
    assert tenant_of(auth, old_token) == "acme" and tenant_of(auth, new.token) == "acme"
    clock.now += 1
    assert tenant_of(auth, old_token) is None and tenant_of(auth, new.token) == "acme"
    states = {c.id: c.state(clock.now) for c in list_credentials(path, "acme")}
    assert states == {old.id: "expired", new.credential.id: "active"}
    with pytest.raises(AuthError, match="expired"):
        rotate(path, "acme", old.id, 60, clock=clock)
    # rotating again never lengthens an overlap already running
    rotate(path, "acme", new.credential.id, 3600, clock=clock)
    rotate(path, "acme", new.credential.id, 7200, clock=clock)
    by_id = {c.id: c for c in list_credentials(path, "acme")}
    assert by_id[new.credential.id].not_after == clock.now + 3600
    assert len(by_id) == 4 and tenant_of(auth, new.token) == "acme"


def test_revoked_token_is_refused_at_once(tmp_path):
    path = tmp_path / "tenants.json"
    token = create_tenant(path, "acme")
    other = issue(path, "acme", [OPERATE])
    auth = TenantAuth(path)
    assert tenant_of(auth, token) == "acme"
    cred = revoke(path, "acme", list_credentials(path, "acme")[0].id)
    assert cred.revoked is not None
    assert tenant_of(auth, token) is None and tenant_of(auth, other.token) == "acme"
    with pytest.raises(UnknownCredential, match="dialback token list"):
        revoke(path, "acme", "c-nope")
    assert revoke(path, "acme", cred.id).revoked == cred.revoked  # idempotent


def test_listing_never_shows_a_digest(tmp_path):
    path = tmp_path / "tenants.json"
    token = create_tenant(path, "acme")
    [cred] = list_credentials(path, "acme")
    shown = json.dumps(cred.public(0.0)) + repr(cred)
    assert token_digest(token) not in shown and token not in shown


def test_a_version_1_token_rotates_away(tmp_path):
    path, clock = tmp_path / "tenants.json", Clock()
    path.write_text(json.dumps({"tenants": {"acme": {"token_sha256": token_digest("old-token-of-acme")}}}))
    auth = TenantAuth(path, clock=clock)
    new = rotate(path, "acme", "legacy", overlap_s=60, clock=clock)
    assert auth.identify("old-token-of-acme") is not None
    clock.now += 60
    assert auth.identify("old-token-of-acme") is None
    assert auth.identify(new.token).scopes == {INGEST, OPERATE}  # same scopes; split them with `token create`


def test_the_one_check_of_what_a_principal_may_do():
    from shared.bearer import Principal

    agent = Principal("acme", frozenset({INGEST}), "c-1")
    operator = Principal("acme", frozenset({OPERATE}), "c-2")
    provider = Principal(None, frozenset({PROVIDER}), "admin-token")
    assert agent.refusal(INGEST) is None and agent.refusal(OPERATE, "acme")[0] == 403
    assert operator.refusal(OPERATE, "acme") is None and operator.refusal(INGEST)[0] == 403
    assert operator.refusal(OPERATE, "globex")[0] == 404  # another tenant: as if it did not exist
    # A missing scope is the same 403 whatever tenant is named: its own, another, one that does not exist.
    assert agent.refusal(OPERATE, "globex") == agent.refusal(OPERATE, "acme") == agent.refusal(OPERATE)
    assert operator.refusal(PROVIDER, "globex") == operator.refusal(PROVIDER, "acme")
    assert operator.refusal(PROVIDER, "acme")[0] == 403 and "provider credential" in operator.refusal(PROVIDER)[1]
    assert all(provider.allows(s, t) for s in (INGEST, OPERATE, PROVIDER) for t in ("acme", None))
