"""`dialback burst ...` against a real HTTP burst service (in-memory cloud behind it)."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import typer
import uvicorn
from typer.testing import CliRunner

from deploy.local.process import free_port
from services.burst.app import create_app
from services.burst.cli import register
from services.burst.config import BurstSettings
from services.burst.engine import Engine
from services.burst.events import EventLog
from services.burst.usage import BurstUsage


@pytest.fixture
def service_url(tmp_path, memory_provider, image_source, monkeypatch, tokens):
    """The service on a free port; the CLI authenticates as acme (DIALBACK_TOKEN)."""
    engine = Engine(EventLog(tmp_path), memory_provider, image_source, BurstUsage(None))
    port = free_port()
    app = create_app(BurstSettings(burst_tick_seconds=0.2, **tokens.settings()), engine=engine)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/healthz", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    monkeypatch.setenv("DIALBACK_BURST_URL", url)
    monkeypatch.setenv("DIALBACK_TOKEN", tokens.acme)
    monkeypatch.setenv("COLUMNS", "200")
    yield url
    server.should_exit = True
    t.join(10)


@pytest.fixture
def cli():
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_failover_status_cleanup_from_the_cli(service_url, cli, memory_provider):
    r = cli("burst", "failover", "g1", "disk0", "-t", "acme", "--id", "fo-cli", "--point", "p1")
    assert r.exit_code == 0, r.output
    assert "running" in r.output and "ACTIVE" in r.output and "m1.tiny" in r.output
    r = cli("burst", "status", "-t", "acme")
    assert r.exit_code == 0 and "fo-cli" in r.output and "failover" in r.output
    r = cli("burst", "cleanup", "fo-cli", "-t", "acme")
    assert r.exit_code == 0 and "cleaned" in r.output
    assert memory_provider.list_tagged({"dialback-op": "fo-cli", "dialback-tenant": "acme"}) == []


def test_burst_scale_up_from_the_cli(service_url, cli):
    assert cli("burst", "scale", "g1", "disk0", "2", "-t", "acme", "--id", "b-cli").exit_code == 0
    r = cli("burst", "scale", "g1", "disk0", "3", "-t", "acme", "--id", "b-cli")
    assert r.exit_code == 0, r.output
    assert r.output.count("ACTIVE") == 3


def test_cli_errors_say_what_to_do(service_url, cli, monkeypatch):
    r = cli("burst", "failover", "g1", "disk0", "-t", "acme", "--flavor", "m9.huge")
    assert r.exit_code == 1 and "m9.huge" in r.output and "m1.tiny" in r.output
    monkeypatch.setenv("DIALBACK_BURST_URL", f"http://127.0.0.1:{free_port()}")
    r = cli("burst", "status", "-t", "acme")
    assert r.exit_code == 2 and "serve-burst" in r.output


def test_failback_from_the_cli_explains_what_is_missing(service_url, cli, tmp_path, tokens):
    assert cli("burst", "failover", "g1", "disk0", "-t", "acme", "--id", "fo-fb", "--point", "p1").exit_code == 0
    disk = tmp_path / "home.img"
    disk.write_bytes(b"x")
    args = ("burst", "failback", "fo-fb", "-t", "acme", "--reverse-group", "g1-back", "--target", str(disk),
            "--agent-url", "http://127.0.0.1:7451")
    r = cli(*args)  # a tenant token, and no tenant failback directory configured
    assert r.exit_code == 1 and "403" in r.output and "DIALBACK_BURST_FAILBACK_ROOT" in r.output, r.output
    r = cli(*args, "--token", tokens.admin)
    assert r.exit_code == 1 and "422" in r.output and "DIALBACK_S3_ENDPOINT" in r.output, r.output
    assert "running" in cli("burst", "status", "fo-fb", "-t", "acme").output


def test_cli_without_a_token_says_how_to_get_one(service_url, cli, monkeypatch, memory_provider):
    monkeypatch.delenv("DIALBACK_TOKEN")
    r = cli("burst", "failover", "g1", "disk0", "-t", "acme", "--id", "fo-nt", "--point", "p1")
    assert r.exit_code == 2 and "--token" in r.output and "DIALBACK_TOKEN" in r.output, r.output
    assert memory_provider.calls == []


def test_cli_token_option_and_other_tenants(service_url, cli, monkeypatch, tokens, memory_provider):
    monkeypatch.delenv("DIALBACK_TOKEN")
    r = cli("burst", "failover", "g1", "disk0", "-t", "acme", "--id", "fo-opt", "--point", "p1",
            "--token", tokens.acme)
    assert r.exit_code == 0 and "running" in r.output, r.output
    calls = list(memory_provider.calls)
    r = cli("burst", "cleanup", "fo-opt", "-t", "acme", "--token", tokens.globex)
    assert r.exit_code == 1 and "404" in r.output and tokens.globex not in r.output, r.output
    r = cli("burst", "status", "-t", "acme", "--token", "not-a-token")
    assert r.exit_code == 1 and "401" in r.output and "not-a-token" not in r.output, r.output
    assert memory_provider.calls == calls
    r = cli("burst", "status", "fo-opt", "-t", "acme", "--token", tokens.admin)
    assert r.exit_code == 0 and "running" in r.output, r.output
