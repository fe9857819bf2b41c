"""A throwaway CA and a server certificate for 127.0.0.1 / localhost (tests and the local stack).

Made with the ``cryptography`` package: the CA certificate as PEM (what clients
trust) and the server's key and certificate chain as a password-protected
PKCS12 keystore (what a Java server such as Kafka loads). Nothing here is for
production certificates.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class LoopbackTls:
    ca_pem: Path        # trust this (clients)
    keystore: Path      # PKCS12: server key + certificate + CA (servers)
    keystore_password: str


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Dialback local"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_loopback_tls(out: Path, days: int = 7) -> LoopbackTls:
    """Write ``ca.pem`` and ``server.p12`` (0600) into ``out``; the server certificate names 127.0.0.1 and localhost."""
    out.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    until = now + dt.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("Dialback local CA")).issuer_name(_name("Dialback local CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(until)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    password = os.urandom(18).hex()
    p12 = pkcs12.serialize_key_and_certificates(b"server", key, cert, [ca],
                                                serialization.BestAvailableEncryption(password.encode()))
    ca_pem, keystore = out / "ca.pem", out / "server.p12"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    fd = os.open(keystore, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(p12)
    return LoopbackTls(ca_pem, keystore, password)
