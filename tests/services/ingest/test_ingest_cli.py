"""dialback tenant create|list and serve-ingest registration."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from services.ingest.cli import register
from shared.auth import INGEST, OPERATE, TenantAuth, read_tenants
from shared.credentials import read_credentials
from shared.crypto.keyring import Keyring, bus_entry, ensure_master_key, load_master_key, transport_entry


def make_app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_create_prints_operator_token_once_writes_agent_token_and_list_shows_names(tmp_path, monkeypatch):
    path = tmp_path / "tenants.json"
    monkeypatch.chdir(tmp_path)  # credentials files land in the working directory by default
    monkeypatch.delenv("DIALBACK_MASTER_KEY_FILE", raising=False)
    monkeypatch.setenv("DIALBACK_TENANTS_FILE", str(path))
    runner = CliRunner()
    app = make_app()
    r = runner.invoke(app, ["tenant", "create", "acme"])
    assert r.exit_code == 0, r.output
    token = r.stdout.strip().splitlines()[-1]
    auth = TenantAuth(path)
    operator = auth.identify(token)
    assert operator.tenant == "acme" and operator.scopes == {OPERATE}
    assert "unencrypted" in r.output  # no master key: the operator is told
    agent = read_credentials(tmp_path / "acme.credentials.json")
    assert agent.transport_key is None and agent.token != token
    # the file on the protected server can only ship: it is an agent credential
    assert auth.identify(agent.token).scopes == {INGEST}
    assert agent.token not in r.output
    again = runner.invoke(app, ["tenant", "create", "acme"])
    assert again.exit_code == 1 and "already exists" in again.output
    bad = runner.invoke(app, ["tenant", "create", "Not_Valid"])
    assert bad.exit_code == 1 and "invalid" in bad.output
    runner.invoke(app, ["tenant", "create", "globex", "--tenants-file", str(path)])
    listed = runner.invoke(app, ["tenant", "list"])
    assert listed.exit_code == 0 and listed.stdout.split() == ["acme", "globex"]
    assert token not in listed.output


def test_serve_ingest_is_registered():
    r = CliRunner().invoke(make_app(), ["serve-ingest", "--help"])
    assert r.exit_code == 0 and "127.0.0.1" in r.output


def test_create_with_master_key_writes_credentials_with_transport_key(tmp_path, monkeypatch):
    path = tmp_path / "tenants.json"
    master = ensure_master_key(tmp_path)
    monkeypatch.setenv("DIALBACK_MASTER_KEY_FILE", str(master))
    monkeypatch.delenv("DIALBACK_KEYRING_FILE", raising=False)
    creds_path = tmp_path / "out" / "acme.json"
    r = CliRunner().invoke(make_app(), ["tenant", "create", "acme", "--tenants-file", str(path),
                                        "--credentials", str(creds_path)])
    assert r.exit_code == 0, r.output
    creds = read_credentials(creds_path)
    assert TenantAuth(path).identify(creds.token).scopes == {INGEST}
    assert TenantAuth(path).identify(r.stdout.strip().splitlines()[-1]).scopes == {OPERATE}
    ring = Keyring(load_master_key(master), tmp_path / "keyring.json")
    assert ring.find(transport_entry("acme")) == creds.transport_key
    assert creds.transport_key.hex() not in r.output
    assert creds.transport_key not in (tmp_path / "keyring.json").read_bytes()
    # an existing credentials file is refused before the tenant is created
    again = CliRunner().invoke(make_app(), ["tenant", "create", "globex", "--tenants-file", str(path),
                                            "--credentials", str(creds_path)])
    assert again.exit_code == 1 and "already exists" in again.output
    assert sorted(read_tenants(path)) == ["acme"]


def test_create_stores_every_key_the_tenants_data_needs(tmp_path, monkeypatch):
    """`tenant create` leaves the transport key AND the bucket's data key in keyring.json,
    so retention sealing the tenant's first object creates nothing (the file is unchanged)."""
    from shared.objectstore.encrypted import EncryptedObjectStore
    from shared.objectstore.memory import MemoryObjectStore
    from shared.tenancy import tenant_bucket

    master = ensure_master_key(tmp_path)
    ring_path = tmp_path / "keyring.json"
    monkeypatch.setenv("DIALBACK_MASTER_KEY_FILE", str(master))
    monkeypatch.setenv("DIALBACK_KEYRING_FILE", str(ring_path))
    monkeypatch.setenv("DIALBACK_BUCKET_PREFIX", "acct-")
    r = CliRunner().invoke(make_app(), ["tenant", "create", "acme", "--tenants-file", str(tmp_path / "t.json"),
                                        "--credentials", str(tmp_path / "acme.json")])
    assert r.exit_code == 0, r.output
    restarted = Keyring(load_master_key(master), ring_path)
    bucket = tenant_bucket("acme", "acct-")
    assert restarted.find(bucket) is not None, "the bucket data key was not created with the tenant"
    assert restarted.find(transport_entry("acme")) == read_credentials(tmp_path / "acme.json").transport_key
    before = ring_path.read_bytes()
    store = EncryptedObjectStore(MemoryObjectStore(), Keyring(load_master_key(master), ring_path))
    store.ensure_bucket(bucket)
    store.put(bucket, "groups/g/manifest.json", b"{}")  # what retention's first write does
    assert ring_path.read_bytes() == before  # no key created lazily
    assert restarted.verify() == 3
    from shared.crypto.keyring import tenant_entries  # the list services and the CLI agree on
    assert set(tenant_entries("acme", "acct-")) == {transport_entry("acme"), bus_entry("acme"), bucket}
