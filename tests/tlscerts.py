"""Test certificates made with `cryptography`: a CA and a server certificate for 127.0.0.1/localhost."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from shared.pki import LOOPBACK, SERVER_AUTH, issue, new_ca, write_private


@dataclass
class Pki:
    ca: Path  # PEM CA certificate (the agent's bundle)
    cert: Path  # PEM server certificate, signed by the CA
    key: Path  # its private key, 0600


def make_pki(out: Path, name: str = "test") -> Pki:
    """A fresh CA and a server certificate for 127.0.0.1, ::1 and localhost under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    ca = new_ca(f"{name} CA", days=2)
    leaf = issue(ca, "localhost", SERVER_AUTH, LOOPBACK, days=1)
    pki = Pki(out / "ca.pem", out / "server.pem", out / "server.key")
    pki.ca.write_bytes(ca.cert_pem())
    pki.cert.write_bytes(leaf.cert_pem())
    write_private(pki.key, leaf.key_pem())
    return pki


@contextlib.contextmanager
def serve_https(app, tls: dict):
    """``app`` under uvicorn with ``tls`` (its ssl_* keyword arguments) on a free loopback port; yields the port."""
    import uvicorn

    from deploy.local.process import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **tls))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not t.is_alive() or time.monotonic() > deadline:
            raise AssertionError("uvicorn did not start over TLS")
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        t.join(10)
