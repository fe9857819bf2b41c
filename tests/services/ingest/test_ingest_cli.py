"""dialback tenant create|list and serve-ingest registration."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from services.ingest.cli import register
from shared.auth import TenantAuth


def make_app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_create_prints_token_once_and_list_shows_names(tmp_path, monkeypatch):
    path = tmp_path / "tenants.json"
    monkeypatch.setenv("DIALBACK_TENANTS_FILE", str(path))
    runner = CliRunner()
    app = make_app()
    r = runner.invoke(app, ["tenant", "create", "acme"])
    assert r.exit_code == 0, r.output
    token = r.stdout.strip().splitlines()[-1]
    assert TenantAuth(path).authenticate(token) == "acme"
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
