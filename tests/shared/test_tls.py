"""shared.tls: the server mixin every service uses, and the agent's verifying client context,
against a real uvicorn server over TLS on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from shared.config import CommonSettings
from shared.tls import TLSConfigError, client_context, parse_pin, pem_pin, server_tls
from tests.tlscerts import make_pki, serve_https


HITS: list[int] = []  # requests the server received


class DemoSettings(CommonSettings, server_tls("demo")):
    demo_host: str = "127.0.0.1"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("other"), "impostor")


@pytest.fixture(scope="module")
def https_url(pki):
    app = FastAPI()

    @app.get("/hello")
    def hello():
        HITS.append(1)
        return {"hello": "tls"}

    s = DemoSettings(demo_tls_cert_file=pki.cert, demo_tls_key_file=pki.key)
    with serve_https(app, s.uvicorn_tls("127.0.0.1")) as port:
        yield f"https://127.0.0.1:{port}"


def test_mixin_reads_service_prefixed_variables(monkeypatch, pki):
    assert DemoSettings().uvicorn_tls("127.0.0.1") == {} and DemoSettings().scheme == "http"
    monkeypatch.setenv("DIALBACK_DEMO_TLS_CERT_FILE", str(pki.cert))
    monkeypatch.setenv("DIALBACK_DEMO_TLS_KEY_FILE", str(pki.key))
    s = DemoSettings()
    assert s.scheme == "https"
    assert s.uvicorn_tls("0.0.0.0") == {"ssl_certfile": str(pki.cert), "ssl_keyfile": str(pki.key)}


def test_half_a_pair_is_refused_naming_both_variables(pki):
    with pytest.raises(ValidationError, match="DIALBACK_DEMO_TLS_CERT_FILE and DIALBACK_DEMO_TLS_KEY_FILE"):
        DemoSettings(demo_tls_cert_file=pki.cert)


def test_key_of_another_certificate_is_refused(pki, other_pki):
    s = DemoSettings(demo_tls_cert_file=pki.cert, demo_tls_key_file=other_pki.key)
    with pytest.raises(TLSConfigError, match="key belongs to the certificate"):
        s.uvicorn_tls("127.0.0.1")
    with pytest.raises(SystemExit, match="^demo: DIALBACK_DEMO_TLS_CERT_FILE="):
        s.uvicorn_tls_or_exit("127.0.0.1")


def test_world_readable_key_is_refused(pki, tmp_path):
    key = tmp_path / "k.pem"
    key.write_bytes(pki.key.read_bytes())
    key.chmod(0o644)
    with pytest.raises(TLSConfigError, match="readable by every user.*chmod 600"):
        DemoSettings(demo_tls_cert_file=pki.cert, demo_tls_key_file=key).uvicorn_tls("127.0.0.1")


def test_pins_parse_as_hex_or_base64(pki):
    hexpin = pem_pin(pki.cert)
    raw = bytes.fromhex(hexpin)
    assert parse_pin(hexpin) == raw
    assert parse_pin("sha256:" + ":".join(hexpin[i:i + 2] for i in range(0, 64, 2))) == raw
    assert parse_pin(base64.b64encode(raw).decode()) == raw
    with pytest.raises(TLSConfigError, match="not a SHA-256 digest"):
        parse_pin("abcd")


def _get(url: str, ctx) -> httpx.Response:
    async def go():
        async with httpx.AsyncClient(verify=ctx) as c:
            return await c.get(url + "/hello")
    return asyncio.run(go())


def test_ca_bundle_verifies_the_server(https_url, pki):
    assert _get(https_url, client_context(pki.ca)).json() == {"hello": "tls"}
    with httpx.Client(verify=client_context(pki.ca)) as c:  # blocking clients get the same checks
        assert c.get(https_url + "/hello").status_code == 200


def test_wrong_ca_is_refused_with_what_to_do(https_url, other_pki):
    with pytest.raises(httpx.ConnectError, match="not signed by a CA in X_CA=.*give the bundle"):
        _get(https_url, client_context(other_pki.ca, ca_var="X_CA"))


def test_matching_pin_passes_and_wrong_pin_is_refused(https_url, pki, other_pki):
    assert _get(https_url, client_context(pki.ca, [parse_pin(pem_pin(pki.cert))])).status_code == 200
    wrong = [parse_pin(pem_pin(other_pki.cert))]
    hits = len(HITS)
    with pytest.raises(httpx.ConnectError, match="matches none of the pinned keys"):
        _get(https_url, client_context(pki.ca, wrong))
    with pytest.raises(httpx.ConnectError, match="matches none of the pinned keys"):
        with httpx.Client(verify=client_context(pki.ca, wrong)) as c:
            c.get(https_url + "/hello")
    assert len(HITS) == hits, "a request (and its bearer token) went out before the pin was checked"


def test_unreadable_ca_bundle_is_a_config_error(tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(TLSConfigError, match="cannot load it as a PEM CA bundle"):
        client_context(bad, ca_var="DIALBACK_AGENT_INGEST_CA_FILE")
