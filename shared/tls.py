"""TLS for Dialback's HTTP endpoints: the server side every service shares, the agent's client side.

Server side: ``server_tls("ingest")`` is a settings mixin with ``ingest_tls_cert_file`` and
``ingest_tls_key_file`` (DIALBACK_INGEST_TLS_CERT_FILE / _KEY_FILE); its ``uvicorn_tls()``
turns them into uvicorn's ssl keyword arguments, after checking that the pair loads (a clear
error naming the variables instead of a traceback from inside uvicorn). Both unset: plain HTTP.

Client side (the agent's WAN leg, docs/agent.md "TLS to ingest"): :func:`client_context`
verifies the server's certificate against a CA bundle (or the default trust store: certifi, or
$SSL_CERT_FILE) and, with pins, also requires the SHA-256 of the certificate's SubjectPublicKeyInfo or of the whole
certificate to be one of them. The pin is checked right after the handshake, before the
first byte of a request (and so the bearer token) is sent on the connection.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import logging
import os
import ssl
import stat
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, Field, create_model, model_validator

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("localhost",)


class TLSConfigError(ValueError):
    """A TLS setting that cannot work; the message names the variable and what to do."""


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- server side -------------------------------------------------------------

class ServerTLS(BaseModel):
    """Base of the ``server_tls(service)`` mixins; ``tls_service`` names the fields' prefix."""

    tls_service: ClassVar[str] = ""

    def _tls_pair(self) -> tuple[Path | None, Path | None]:
        s = self.tls_service
        return getattr(self, f"{s}_tls_cert_file"), getattr(self, f"{s}_tls_key_file")

    def _tls_vars(self) -> tuple[str, str]:
        p = f"DIALBACK_{self.tls_service.upper()}_TLS"
        return f"{p}_CERT_FILE", f"{p}_KEY_FILE"

    @model_validator(mode="after")
    def _tls_both_or_neither(self):
        cert, key = self._tls_pair()
        if (cert is None) != (key is None):
            cv, kv = self._tls_vars()
            raise TLSConfigError(f"set both {cv} and {kv} (a PEM certificate chain and its private key), "
                                 "or neither for plain HTTP")
        return self

    @property
    def tls_enabled(self) -> bool:
        return self._tls_pair()[0] is not None

    @property
    def scheme(self) -> str:
        return "https" if self.tls_enabled else "http"

    def uvicorn_tls(self, host: str | None = None) -> dict[str, Any]:
        """uvicorn's ``ssl_certfile``/``ssl_keyfile`` when TLS is configured, else {}.

        Raises TLSConfigError when the files do not load as a certificate and its key, or the key
        can be read by others. ``host``: the bind address; plain HTTP on a non-loopback one is
        logged as a warning (tokens would cross the network in the clear).
        """
        cert, key = self._tls_pair()
        if cert is None or key is None:
            if host is not None and not is_loopback(host):
                cv, _ = self._tls_vars()
                log.warning("%s serves plain HTTP on %s: bearer tokens cross the network in the clear; "
                            "set %s and its key, or put a TLS proxy in front", self.tls_service, host, cv)
            return {}
        check_server_pair(cert, key, *self._tls_vars())
        return {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}


    def uvicorn_tls_or_exit(self, host: str) -> dict[str, Any]:
        """uvicorn_tls() for a launcher: a bad setting stops the process with its message."""
        try:
            return self.uvicorn_tls(host)
        except TLSConfigError as err:
            raise SystemExit(f"{self.tls_service}: {err}") from None


def check_server_pair(cert: Path, key: Path, cert_var: str, key_var: str) -> None:
    """Raise TLSConfigError unless ``cert`` and ``key`` load together as a server certificate."""
    try:
        mode = os.stat(key).st_mode
    except OSError as err:
        raise TLSConfigError(f"{key_var}={key}: cannot read the private key ({err.strerror})") from None
    if mode & stat.S_IROTH:
        raise TLSConfigError(f"{key_var}={key} is readable by every user (mode {stat.S_IMODE(mode):o}); "
                             f"run: chmod 600 {key}")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(cert, key)
    except FileNotFoundError as err:
        raise TLSConfigError(f"{cert_var}={cert}: {err.strerror}") from None
    except (ssl.SSLError, OSError) as err:
        raise TLSConfigError(f"{cert_var}={cert} with {key_var}={key} does not load as a PEM certificate "
                             f"chain and its private key ({err}); check that the key belongs to the "
                             "certificate and is not encrypted") from None


@lru_cache(maxsize=None)
def server_tls(service: str) -> type[ServerTLS]:
    """The settings mixin for ``service``: fields ``<service>_tls_cert_file`` / ``_tls_key_file``.

    Use as ``class IngestSettings(CommonSettings, server_tls("ingest"))``.
    """
    var = f"DIALBACK_{service.upper()}_TLS"
    fields = {
        f"{service}_tls_cert_file": (Path | None, Field(
            None, description=f"PEM certificate chain {service} serves HTTPS with ({var}_CERT_FILE); "
                              "unset: plain HTTP")),
        f"{service}_tls_key_file": (Path | None, Field(
            None, description=f"private key of that certificate ({var}_KEY_FILE), not readable by others")),
    }
    model = create_model(f"{service.capitalize()}TLS", __base__=ServerTLS, **fields)
    model.tls_service = service
    return model


# -- client side -------------------------------------------------------------

def parse_pin(pin: str) -> bytes:
    """A SHA-256 pin as hex (colons allowed, optional ``sha256:`` or ``sha256/`` prefix) or base64."""
    text = pin.strip()
    for prefix in ("sha256:", "sha256/", "pin-sha256:"):
        if text.lower().startswith(prefix):
            text = text[len(prefix):]
    hexed = text.replace(":", "")
    try:
        raw = bytes.fromhex(hexed) if len(hexed) == 64 else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 32:
        raise TLSConfigError(f"pin {pin!r} is not a SHA-256 digest (64 hex digits or 44 base64 characters); "
                             "get one with `dialback tls pin CERT.pem`")
    return raw


def cert_pins(der: bytes) -> tuple[bytes, bytes]:
    """(SHA-256 of the SubjectPublicKeyInfo, SHA-256 of the certificate) of a DER certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    spki = x509.load_der_x509_certificate(der).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest(), hashlib.sha256(der).digest()


def pem_pin(path: Path) -> str:
    """The SPKI SHA-256 pin (hex) of the first certificate in a PEM file."""
    der = ssl.PEM_cert_to_DER_cert(Path(path).read_text())
    return cert_pins(der)[0].hex()


class PinMismatch(ssl.SSLCertVerificationError):
    pass


def _check_pins(obj, pins: frozenset[bytes], what: str) -> None:
    der = obj.getpeercert(binary_form=True)
    spki, whole = cert_pins(der) if der else (b"", b"")
    if spki not in pins and whole not in pins:
        raise PinMismatch(1, f"{what}'s certificate (SPKI sha256 {spki.hex()}) matches none of the pinned "
                          "keys: refusing the connection. If the server's key was rotated on purpose, add "
                          "the new pin (`dialback tls pin CERT.pem`) and restart")


def _hint(err: ssl.SSLCertVerificationError, what: str, ca_hint: str) -> ssl.SSLCertVerificationError:
    if isinstance(err, PinMismatch):
        return err
    # (errno, text): ssl errors print their strerror, or else their args tuple.
    why = err.verify_message or err
    return ssl.SSLCertVerificationError(1, f"{what}'s TLS certificate was not accepted ({why}): {ca_hint}")


def client_context(ca_file: Path | None = None, pins: list[bytes] | tuple[bytes, ...] = (),
                   what: str = "the server", ca_var: str = "the CA bundle") -> ssl.SSLContext:
    """A verifying client context: the certificate chain against ``ca_file`` (or the default trust
    store), the host name, and, with ``pins``, the SPKI or certificate SHA-256 right after the
    handshake. A failed check raises ssl.SSLCertVerificationError whose message says what to do.
    """
    import httpx

    try:
        ctx = ssl.create_default_context(cafile=str(ca_file)) if ca_file else httpx.create_ssl_context()
    except (OSError, ssl.SSLError) as err:
        raise TLSConfigError(f"{ca_var}={ca_file}: cannot load it as a PEM CA bundle ({err})") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ca_hint = (f"it is not signed by a CA in {ca_var}={ca_file}; give the bundle of the CA that signed "
               "its certificate" if ca_file else
               "it is not signed by a CA in the default trust store (certifi, or $SSL_CERT_FILE); set "
               f"{ca_var} to the CA bundle that signed it")
    pinset = frozenset(pins)

    class _Verified(ssl.SSLObject):  # asyncio/anyio connections (httpx.AsyncClient)
        def do_handshake(self) -> None:
            try:
                super().do_handshake()
            except ssl.SSLCertVerificationError as err:
                raise _hint(err, what, ca_hint) from None
            if pinset:
                _check_pins(self, pinset, what)

    class _VerifiedSocket(ssl.SSLSocket):  # blocking connections (httpx.Client)
        def do_handshake(self, block: bool = False) -> None:
            try:
                super().do_handshake(block)
            except ssl.SSLCertVerificationError as err:
                raise _hint(err, what, ca_hint) from None
            if pinset:
                _check_pins(self, pinset, what)

    ctx.sslobject_class = _Verified
    ctx.sslsocket_class = _VerifiedSocket
    return ctx
