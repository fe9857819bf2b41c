"""The agent's WAN leg: https:// with verification; plain http:// only to a loopback ingest."""

from __future__ import annotations

import ssl

import pytest
from pydantic import ValidationError

from agent.config import AgentSettings
from shared.tls import pem_pin
from tests.tlscerts import make_pki


def settings(**kw) -> AgentSettings:
    return AgentSettings(token="t", volumes="", **kw)


@pytest.mark.parametrize("url", ["http://ingest.example.net:8100", "http://10.0.0.5:8100", "http://[2001:db8::1]:8100"])
def test_plain_http_to_a_remote_ingest_is_refused_at_config_time(url):
    with pytest.raises(ValidationError, match="is plain HTTP to .*Use https://") as err:
        settings(ingest=url)
    assert "DIALBACK_AGENT_INGEST" in str(err.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8100", "http://localhost:8100", "http://[::1]:8100",
                                 "http://127.0.0.2:9"])
def test_plain_http_to_loopback_is_allowed(url):
    s = settings(ingest=url)
    assert s.ingest_tls() is None


@pytest.mark.parametrize("url", ["ftp://ingest:21", "ingest.example.net:8100", "https://"])
def test_not_an_http_url_is_refused(url):
    with pytest.raises(ValidationError, match="not an http\\(s\\) URL"):
        settings(ingest=url)


def test_https_gets_a_verifying_context_with_the_ca_and_pins(tmp_path):
    pki = make_pki(tmp_path)
    s = settings(ingest="https://ingest.example.net:8100", ingest_ca_file=pki.ca,
                 ingest_pins=f"{pem_pin(pki.cert)}, sha256:{'00' * 32}")
    ctx = s.ingest_tls()
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert len(s.pins()) == 2


def test_a_malformed_pin_is_refused_at_config_time():
    with pytest.raises(ValidationError, match="not a SHA-256 digest"):
        settings(ingest="https://ingest.example.net", ingest_pins="deadbeef")


def test_ca_or_pins_with_plain_http_are_refused(tmp_path):
    with pytest.raises(ValidationError, match="plain HTTP, nothing to verify"):
        settings(ingest="http://127.0.0.1:8100", ingest_ca_file=tmp_path / "ca.pem")


def test_from_environment(monkeypatch, tmp_path):
    pki = make_pki(tmp_path)
    monkeypatch.setenv("DIALBACK_AGENT_INGEST", "https://127.0.0.1:8443")
    monkeypatch.setenv("DIALBACK_AGENT_INGEST_CA_FILE", str(pki.ca))
    monkeypatch.setenv("DIALBACK_AGENT_INGEST_PINS", pem_pin(pki.cert))
    s = AgentSettings()
    assert s.ingest_ca_file == pki.ca and s.pins() == [bytes.fromhex(pem_pin(pki.cert))]


def test_dialback_tls_pin_prints_what_the_agent_accepts(tmp_path):
    from typer.testing import CliRunner

    from cli.main import app

    pki = make_pki(tmp_path)
    r = CliRunner().invoke(app, ["tls", "pin", str(pki.cert)])
    assert r.exit_code == 0, r.output
    assert settings(ingest="https://h", ingest_pins=r.output.strip()).pins() == [bytes.fromhex(pem_pin(pki.cert))]
    bad = CliRunner().invoke(app, ["tls", "pin", str(tmp_path / "missing.pem")])
    assert bad.exit_code == 1 and "cannot read a PEM certificate" in bad.output
