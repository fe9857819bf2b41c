"""`dialback token create|rotate|revoke|list` on a tenants file; the services see each change at once."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cli.main import app
from shared.auth import INGEST, OPERATE, PROVIDER, TenantAuth, create_tenant, list_credentials
from shared.credentials import read_credentials


def run(*args):
    return CliRunner().invoke(app, list(args))


def test_create_rotate_revoke_list(tmp_path, monkeypatch):
    path = tmp_path / "tenants.json"
    monkeypatch.setenv("DIALBACK_TENANTS_FILE", str(path))
    monkeypatch.delenv("DIALBACK_MASTER_KEY_FILE", raising=False)
    create_tenant(path, "acme")
    auth = TenantAuth(path)

    r = run("token", "create", "acme", "--label", "ops laptop")
    assert r.exit_code == 0, r.output
    operator = r.stdout.strip().splitlines()[-1]
    assert auth.identify(operator).scopes == {OPERATE}
    cid = auth.identify(operator).credential

    r = run("token", "rotate", "acme", "--id", cid, "--overlap", "15m")
    assert r.exit_code == 0, r.output
    rotated = r.stdout.strip().splitlines()[-1]
    assert auth.identify(operator) is not None and auth.identify(rotated).scopes == {OPERATE}
    old = next(c for c in list_credentials(path, "acme") if c.id == cid)
    assert 899 < old.not_after - old.created < 901 + 60  # about 15 minutes from now

    listed = run("token", "list", "acme")
    assert listed.exit_code == 0 and cid in listed.stdout and "expiring" in listed.stdout
    assert operator not in listed.output and rotated not in listed.output

    r = run("token", "revoke", "acme", "--id", cid)
    assert r.exit_code == 0 and "revoked" in r.output
    assert auth.identify(operator) is None and auth.identify(rotated) is not None

    # refusals say what to do
    assert run("token", "revoke", "acme", "--id", "c-nope").exit_code == 1
    r = run("token", "create", "nobody")
    assert r.exit_code == 1 and "dialback tenant create nobody" in r.output
    r = run("token", "create", "acme", "--scope", "provider")
    assert r.exit_code == 1 and "not valid for a tenant credential" in r.output
    assert run("token", "create").exit_code == 2  # neither a tenant nor --provider
    r = run("token", "rotate", "acme", "--id", rotated, "--overlap", "soon")
    assert r.exit_code == 2 and "not a duration" in r.output


def test_provider_credential_and_agent_credentials_file(tmp_path, monkeypatch):
    path = tmp_path / "tenants.json"
    monkeypatch.setenv("DIALBACK_TENANTS_FILE", str(path))
    monkeypatch.delenv("DIALBACK_MASTER_KEY_FILE", raising=False)
    create_tenant(path, "acme", scopes=[OPERATE])
    auth = TenantAuth(path)
    r = run("token", "create", "--provider")
    assert r.exit_code == 0, r.output
    who = auth.identify(r.stdout.strip().splitlines()[-1])
    assert who.tenant is None and who.scopes == {PROVIDER}

    creds = tmp_path / "agent.json"
    r = run("token", "create", "acme", "--scope", "ingest", "--credentials", str(creds))
    assert r.exit_code == 0, r.output
    agent = read_credentials(creds)
    assert auth.identify(agent.token).scopes == {INGEST} and agent.token not in r.output
    # rotation rewrites the agent's file in place
    r = run("token", "rotate", "acme", "--id", auth.identify(agent.token).credential, "--overlap", "0",
            "--credentials", str(creds))
    assert r.exit_code == 0, r.output
    new = read_credentials(creds)
    assert new.token != agent.token and auth.identify(new.token).scopes == {INGEST}
    assert auth.identify(agent.token) is None  # no overlap asked: the old token stops at once
    assert oct(creds.stat().st_mode & 0o777) == "0o600"
    assert json.loads(creds.read_text())["tenant"] == "acme"
