"""A throwaway CA and a server certificate for 127.0.0.1 / localhost (tests and the local stack).

Made with the ``cryptography`` package: the CA certificate as PEM (what clients
trust) and the server's key and certificate chain as a password-protected
PKCS12 keystore (what a Java server such as Kafka loads). Nothing here is for
production certificates.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from shared.pki import SERVER_AUTH, issue, new_ca, write_private


@dataclass(frozen=True)
class LoopbackTls:
    ca_pem: Path        # trust this (clients)
    keystore: Path      # PKCS12: server key + certificate + CA (servers)
    keystore_password: str


def make_loopback_tls(out: Path, days: int = 7) -> LoopbackTls:
    """Write ``ca.pem`` and ``server.p12`` (0600) into ``out``; the server certificate names 127.0.0.1 and localhost."""
    out.mkdir(parents=True, exist_ok=True)
    ca = new_ca("Dialback local CA", days)
    leaf = issue(ca, "127.0.0.1", SERVER_AUTH, ["127.0.0.1", "localhost"], days)
    password = os.urandom(18).hex()
    p12 = pkcs12.serialize_key_and_certificates(b"server", leaf.key, leaf.cert, [ca.cert],
                                                serialization.BestAvailableEncryption(password.encode()))
    ca_pem = out / "ca.pem"
    ca_pem.write_bytes(ca.cert_pem())
    return LoopbackTls(ca_pem, write_private(out / "server.p12", p12), password)
