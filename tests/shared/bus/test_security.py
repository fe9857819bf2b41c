"""DIALBACK_KAFKA_* security settings: what each client library gets, and refusals that name the variable."""

from __future__ import annotations

import faust
import pytest

from deploy.local.certs import make_loopback_tls
from shared.bus.kafka import client_config, consumer, producer_config
from shared.bus.security import KafkaSecurityError, kafka_security


@pytest.fixture
def ca(tmp_path):
    return make_loopback_tls(tmp_path / "tls").ca_pem


def _env(monkeypatch, **kv):
    for k, v in kv.items():
        monkeypatch.setenv(f"DIALBACK_KAFKA_{k.upper()}", v)


def test_plaintext_by_default_adds_nothing(monkeypatch):
    assert client_config("h:1") == {"bootstrap.servers": "h:1"}
    assert kafka_security().faust_credentials() is None


def test_sasl_ssl_reaches_every_confluent_client_and_faust(monkeypatch, ca, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("s3cret-pw\n")
    _env(monkeypatch, security_protocol="SASL_SSL", sasl_username="dialback", sasl_password_file=str(pw),
         ssl_cafile=str(ca))
    want = {"security.protocol": "sasl_ssl", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "dialback",
            "sasl.password": "s3cret-pw", "ssl.ca.location": str(ca),
            "ssl.endpoint.identification.algorithm": "https", "enable.ssl.certificate.verification": True}
    for conf in (client_config("h:1"), producer_config("h:1", **{"linger.ms": 5})):
        assert want.items() <= conf.items()
    consumer("127.0.0.1:1", "g").close()  # librdkafka accepts the settings
    creds = kafka_security().faust_credentials()
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.protocol.value, creds.mechanism.value, creds.username, creds.password) == (
        "SASL_SSL", "SCRAM-SHA-512", "dialback", "s3cret-pw")
    assert creds.ssl_context.check_hostname and "s3cret" not in repr(kafka_security())


def test_incomplete_or_contradictory_settings_are_refused_naming_the_variable(monkeypatch, tmp_path):
    _env(monkeypatch, security_protocol="SASL_SSL", sasl_username="dialback")
    with pytest.raises(KafkaSecurityError, match="DIALBACK_KAFKA_SASL_PASSWORD"):
        client_config("h:1")
    _env(monkeypatch, sasl_password="a", sasl_password_file=str(tmp_path / "pw"))
    with pytest.raises(KafkaSecurityError, match="not both"):
        client_config("h:1")
    monkeypatch.delenv("DIALBACK_KAFKA_SASL_PASSWORD_FILE")
    _env(monkeypatch, security_protocol="SASL_SSL_PLEASE")
    with pytest.raises(KafkaSecurityError, match="DIALBACK_KAFKA_SECURITY_PROTOCOL"):
        client_config("h:1")
    _env(monkeypatch, security_protocol="SSL", ssl_cafile=str(tmp_path / "missing.pem"))
    with pytest.raises(KafkaSecurityError, match="DIALBACK_KAFKA_SSL_CAFILE.*is not a file"):
        client_config("h:1")


def test_ssl_only_and_sasl_plaintext(monkeypatch, ca):
    _env(monkeypatch, security_protocol="SSL", ssl_cafile=str(ca))
    conf = client_config("h:1")
    assert conf["security.protocol"] == "ssl" and conf["ssl.ca.location"] == str(ca)
    assert not any(k.startswith("sasl.") for k in conf)
    assert isinstance(kafka_security().faust_credentials(), faust.SSLCredentials)
    _env(monkeypatch, security_protocol="SASL_PLAINTEXT", sasl_username="u", sasl_password="p",
         sasl_mechanism="SCRAM-SHA-256")
    conf = client_config("h:1")
    assert (conf["security.protocol"], conf["sasl.mechanism"]) == ("sasl_plaintext", "SCRAM-SHA-256")
    assert "ssl.ca.location" not in conf
    creds = kafka_security().faust_credentials()
    assert (creds.protocol.value, creds.mechanism.value, creds.ssl_context) == ("SASL_PLAINTEXT", "SCRAM-SHA-256", None)
