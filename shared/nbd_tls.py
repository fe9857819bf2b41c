"""Mutual TLS for NBD over TCP (NBD_OPT_STARTTLS with X.509 certificates).

Directory layouts are the ones qemu-nbd, nbdkit and libnbd read, so the
same directories work with every consumer:

- server dir: ``ca-cert.pem``, ``server-cert.pem``, ``server-key.pem``
- client dir: ``ca-cert.pem``, ``client-cert.pem``, ``client-key.pem``
  (libnbd/nbdfuse: ``nbds://host:port/export?tls-certificates=DIR``;
  qemu: ``--object tls-creds-x509,dir=DIR,endpoint=client``)

The server requires a client certificate signed by its CA: only a consumer
holding a client key of this CA can connect. :func:`make_certs` creates a CA,
one server and one client certificate (``dialback agent nbd-certs``). Keys
are written 0600; a server key that group or others can read is refused.
Python's ssl module has no TLS-PSK, hence certificates.
"""

from __future__ import annotations

import os
import ssl
import stat
from pathlib import Path

from shared.errors import DialbackError


class NbdTlsError(DialbackError, ValueError):
    pass


def _files(directory: Path, role: str) -> tuple[Path, Path, Path]:
    d = Path(directory)
    files = d / "ca-cert.pem", d / f"{role}-cert.pem", d / f"{role}-key.pem"
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise NbdTlsError(f"NBD TLS directory {d} lacks {', '.join(missing)}; create one with "
                          f"`dialback agent nbd-certs DIR` (it writes DIR/server and DIR/client)")
    mode = files[2].stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise NbdTlsError(f"NBD TLS key {files[2]} is accessible by group or others "
                          f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {files[2]}")
    return files


def server_context(directory: str | os.PathLike) -> ssl.SSLContext:
    """TLS 1.2+ server context that requires a client certificate from the directory's CA."""
    ca, cert, key = _files(Path(directory), "server")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
        ctx.load_verify_locations(ca)
    except ssl.SSLError as err:
        raise NbdTlsError(f"NBD TLS directory {directory} is not usable: {err}") from err
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(directory: str | os.PathLike) -> ssl.SSLContext:
    """Client context: verifies the server against the directory's CA and presents the client certificate."""
    ca, cert, key = _files(Path(directory), "client")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_verify_locations(ca)
        ctx.load_cert_chain(cert, key)
    except ssl.SSLError as err:
        raise NbdTlsError(f"NBD TLS directory {directory} is not usable: {err}") from err
    return ctx


def make_certs(out: str | os.PathLike, hostnames: list[str], days: int = 825) -> tuple[Path, Path]:
    """Create ``out/server`` and ``out/client`` (a fresh CA each time). Returns both directories.

    ``hostnames`` go into the server certificate's subjectAltName (IP addresses as IP entries);
    clients check the name they connect to against it. The CA key is not kept: to add or revoke
    a client, make a new set and restart the server with it (that is the rotation).
    """
    from shared.pki import CLIENT_AUTH, SERVER_AUTH, issue, new_ca, write_private

    out = Path(out)
    server_dir, client_dir = out / "server", out / "client"
    for d in (server_dir, client_dir):
        if d.exists() and any(d.iterdir()):
            raise NbdTlsError(f"{d} already holds files; choose an empty directory (old keys are never overwritten)")
    ca = new_ca("Dialback NBD CA", days)
    for d, role, usage, hosts in ((server_dir, "server", SERVER_AUTH, hostnames),
                                  (client_dir, "client", CLIENT_AUTH, None)):
        leaf = issue(ca, f"dialback-nbd-{role}", usage, hosts, days)
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
        (d / "ca-cert.pem").write_bytes(ca.cert_pem())
        (d / f"{role}-cert.pem").write_bytes(leaf.cert_pem())
        write_private(d / f"{role}-key.pem", leaf.key_pem(), exclusive=True)
    return server_dir, client_dir
