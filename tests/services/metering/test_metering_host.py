"""Metering's API binds off loopback only when it serves HTTPS itself (DIALBACK_METERING_TLS_*)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.metering.config import MeteringSettings
from tests.tlscerts import make_pki


def test_non_loopback_bind_without_tls_is_refused():
    with pytest.raises(ValidationError, match="DIALBACK_METERING_HOST=0.0.0.0 is not a loopback address.*"
                                              "DIALBACK_METERING_TLS_CERT_FILE"):
        MeteringSettings(metering_host="0.0.0.0")


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_loopback_needs_no_tls(host):
    assert MeteringSettings(metering_host=host).uvicorn_tls(host) == {}


def test_non_loopback_bind_with_tls_serves_https(tmp_path):
    pki = make_pki(tmp_path)
    s = MeteringSettings(metering_host="0.0.0.0", metering_tls_cert_file=pki.cert, metering_tls_key_file=pki.key)
    assert s.uvicorn_tls(s.metering_host) == {"ssl_certfile": str(pki.cert), "ssl_keyfile": str(pki.key)}
