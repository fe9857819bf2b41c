"""The agent seals batches with the transport key from its credentials file (fake ingest over real HTTP)."""

from __future__ import annotations

import os

import pytest

from agent.runtime import AgentThread
from shared.credentials import AgentCredentials, CredentialsError, write_credentials
from shared.crypto.transport import new_key
from tests.agent.conftest import agent_settings, make_image, wait_for
from tests.agent.fake_ingest import FakeIngest, IngestServer
from tests.agent.test_group import replay_matches

MiB = 1 << 20


@pytest.fixture
def key() -> bytes:
    return new_key()


@pytest.fixture
def sealed_ingest(key):
    server = IngestServer(FakeIngest(sealing=("acme", key))).start()
    try:
        yield server
    finally:
        server.stop()


def test_agent_ships_sealed_batches_that_replay_exactly(tmp_path, sealed_ingest, key):
    creds = tmp_path / "acme.credentials.json"
    write_credentials(creds, AgentCredentials("acme", "secret-token", key))
    img = make_image(tmp_path / "a.img", 4 * MiB, os.urandom(50_000), 4096)
    h = AgentThread(agent_settings(tmp_path, sealed_ingest.url, {"disk0": img}, token="",
                                   credentials_file=creds)).start()
    try:
        g = h.group
        for i in range(8):
            g.write("disk0", i * 100_000, os.urandom(30_000))
        wait_for(lambda: g.state.initial_sync_complete and g.state.acked_through == g.spool.last_seq,
                 what="sealed batches shipped")
        fake = sealed_ingest.ingest
        assert fake.sealed_batches == fake.batches > 0
        assert replay_matches(tmp_path, g, fake.records["grp1"])
    finally:
        h.stop()


def test_agent_with_wrong_key_gets_nothing_acknowledged(tmp_path, sealed_ingest):
    creds = tmp_path / "c.json"
    write_credentials(creds, AgentCredentials("acme", "secret-token", new_key()))
    img = make_image(tmp_path / "a.img", 1 * MiB)
    h = AgentThread(agent_settings(tmp_path, sealed_ingest.url, {"disk0": img}, token="",
                                   credentials_file=creds)).start()
    try:
        g = h.group
        g.write("disk0", 0, os.urandom(4096))
        wait_for(lambda: "does not authenticate" in g.alarms.get("shipping", ""), what="rejection alarm")
        assert g.state.acked_through == 0 and sealed_ingest.ingest.records["grp1"] == []
    finally:
        h.stop()


def test_credentials_readable_by_others_stop_the_agent_before_it_starts(tmp_path):
    creds = tmp_path / "c.json"
    write_credentials(creds, AgentCredentials("acme", "secret-token", new_key()))
    os.chmod(creds, 0o640)
    img = make_image(tmp_path / "a.img", 1 * MiB)
    with pytest.raises(CredentialsError, match="chmod 600"):
        AgentThread(agent_settings(tmp_path, "http://127.0.0.1:9", {"disk0": img}, token="",
                                   credentials_file=creds)).start()
    assert not (tmp_path / "spool").exists()


def test_protect_needs_credentials_or_token(tmp_path, monkeypatch):
    import typer
    from typer.testing import CliRunner

    from agent.cli import register

    monkeypatch.delenv("DIALBACK_AGENT_TOKEN", raising=False)
    monkeypatch.delenv("DIALBACK_AGENT_CREDENTIALS_FILE", raising=False)
    app = typer.Typer()
    register(app)
    r = CliRunner().invoke(app, ["protect", "--ingest", "http://127.0.0.1:9", "--group", "g1",
                                 "--volume", f"d0={tmp_path / 'd.img'}", "--spool", str(tmp_path / "spool")])
    assert r.exit_code == 2 and "--credentials" in r.output
    assert not (tmp_path / "spool").exists()
