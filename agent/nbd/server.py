"""Threaded NBD server: fixed newstyle handshake, simple replies.

One thread per connection with blocking sockets. A write's payload is read
straight into a per-connection buffer (no copies), handed to the backend,
and the reply is sent only after the backend has applied and spooled it.
Threads let the socket reads, CRCs and disk writes of several connections
use several cores (those calls release the GIL); ordering between
connections is the backend's job (the group lock).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import struct
import threading
from typing import Protocol

from agent.nbd import protocol as p
from shared import unixsock

log = logging.getLogger(__name__)

# CAN_MULTI_CONN is honest: every connection of an export shares one file
# descriptor (one page cache) and a FLUSH on any connection fsyncs the
# whole group, so clients (nbdfuse -C 4) may spread requests over several.
TRANSMISSION_FLAGS = (p.TFLAG_HAS_FLAGS | p.TFLAG_SEND_FLUSH | p.TFLAG_SEND_FUA
                      | p.TFLAG_SEND_TRIM | p.TFLAG_SEND_WRITE_ZEROES | p.TFLAG_CAN_MULTI_CONN)
# A client announcing a payload larger than this is broken or hostile: we
# cannot skip it safely, so the connection is dropped.
_MAX_DISCARD = 64 << 20
_MAX_OPTION = 1 << 16
HANDSHAKE_TIMEOUT = 30.0


def _flags(export) -> int:
    """Transmission flags; an export whose backend says ``read_only`` is announced read-only."""
    return TRANSMISSION_FLAGS | (p.TFLAG_READ_ONLY if getattr(export, "read_only", False) else 0)


class ExportBackend(Protocol):
    """What the server needs from an export. Methods raise OSError on failure."""

    name: str
    size: int

    def read(self, offset: int, length: int) -> bytes: ...
    def write(self, offset: int, data: bytes) -> None: ...
    def trim(self, offset: int, length: int) -> None: ...
    def zeroes(self, offset: int, length: int, no_hole: bool) -> None: ...
    def flush(self) -> None: ...


class _Abort(Exception):
    """The client aborted or broke the handshake: close quietly."""


class NbdServer:
    """NBD on a Unix socket (``unix_path``, mode 0600) or on TCP ``host:port``.

    ``tls``: a server context (shared/nbd_tls.py); every client must then
    negotiate NBD_OPT_STARTTLS (and present a certificate the context
    accepts) before any other option: until then options get
    NBD_REP_ERR_TLS_REQD and NBD_OPT_EXPORT_NAME closes the connection.
    ``listable=False``: NBD_OPT_LIST is refused and the empty name selects
    nothing, so an export's name can serve as its secret.
    """

    def __init__(self, exports: dict[str, ExportBackend], host: str = "127.0.0.1", port: int = 10809, *,
                 unix_path: str | os.PathLike | None = None, tls: ssl.SSLContext | None = None,
                 listable: bool = True, setting: str = "--nbd-port"):
        self.exports = exports
        self.host = host
        self.port = port
        self.unix_path = unix_path
        self.tls = tls
        self.listable = listable
        self.setting = setting
        self._sock: socket.socket | None = None
        self._conns: dict[int, tuple[socket.socket, threading.Thread | None]] = {}
        self._lock = threading.Lock()
        self._closing = False
        self._acceptor: threading.Thread | None = None

    @property
    def where(self) -> str:
        return str(self.unix_path) if self.unix_path is not None else f"{self.host}:{self.port}"

    def start_sync(self) -> int:
        """Listen; returns the TCP port (0 for a Unix socket)."""
        if self.unix_path is not None:
            sock = unixsock.listen_unix(self.unix_path, "NBD server", self.setting)
            self.port = 0
        else:
            try:
                sock = socket.create_server((self.host, self.port))
            except OSError as err:
                raise OSError(err.errno, f"cannot listen on {self.host}:{self.port} for NBD ({err.strerror}); "
                                         f"pick another {self.setting}") from err
            self.port = sock.getsockname()[1]
        self._sock = sock
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"nbd-accept-{self.port}", daemon=True)
        self._acceptor.start()
        log.info("NBD server listening on %s%s exports=%s", self.where, " (TLS required)" if self.tls else "",
                 sorted(self.exports) if self.listable else f"{len(self.exports)} unlisted")
        return self.port

    async def start(self) -> int:
        return self.start_sync()

    def close_sync(self) -> None:
        self._closing = True
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            if self.unix_path is not None:
                unixsock.remove(self._sock, self.unix_path)
            else:
                self._sock.close()
        with self._lock:
            conns = list(self._conns.values())
        for conn, _ in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for _, thread in conns:
            if thread is not None:
                thread.join(10)
        if self._acceptor is not None:
            self._acceptor.join(10)

    async def close(self) -> None:
        await asyncio.to_thread(self.close_sync)

    def _accept_loop(self) -> None:
        while not self._closing:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            if conn.family != socket.AF_UNIX:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            thread = threading.Thread(target=self._serve, args=(conn,), name="nbd-conn", daemon=True)
            with self._lock:
                self._conns[id(thread)] = (conn, thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        key = id(threading.current_thread())
        try:
            # An unauthenticated client must not hold a thread forever: the handshake has a deadline.
            conn.settimeout(HANDSHAKE_TIMEOUT)
            rfile = conn.makefile("rb", buffering=1 << 16)
            export, conn, rfile = self._handshake(conn, rfile, key)
            if export is not None:
                conn.settimeout(None)
                self._transmission(export, conn, rfile)
        except (_Abort, EOFError, ConnectionError, OSError):
            pass
        except Exception:  # one bad connection must not take the server down
            log.exception("NBD connection failed")
        finally:
            with self._lock:
                current = self._conns.pop(key, (conn, None))[0]  # the TLS socket after STARTTLS
            current.close()
            conn.close()

    def _starttls(self, conn: socket.socket, rfile, key: int):
        """Reply to NBD_OPT_STARTTLS and wrap the socket; the option haggling restarts inside TLS."""
        conn.sendall(_reply(p.OPT_STARTTLS, p.REP_ACK))
        rfile.detach()  # nothing is buffered: the client waits for our ACK before its ClientHello
        try:
            tconn = self.tls.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as err:
            log.warning("NBD TLS handshake on %s refused: %s", self.where, err)
            raise _Abort() from err
        with self._lock:
            thread = self._conns.get(key, (None, None))[1]
            self._conns[key] = (tconn, thread)
        return tconn, tconn.makefile("rb", buffering=1 << 16)

    # -- handshake -----------------------------------------------------------
    def _handshake(self, conn: socket.socket, rfile, key: int = 0):
        """Returns (export or None, the socket and reader to go on with: TLS ones after STARTTLS)."""
        conn.sendall(p.NBDMAGIC + struct.pack(">QH", p.IHAVEOPT, p.FLAG_FIXED_NEWSTYLE | p.FLAG_NO_ZEROES))
        (cflags,) = struct.unpack(">I", _read(rfile, 4))
        no_zeroes = bool(cflags & p.CFLAG_NO_ZEROES)
        if not cflags & p.CFLAG_FIXED_NEWSTYLE:
            raise _Abort()
        secured = self.tls is None
        while True:
            magic, opt, length = p.OPT_HEADER.unpack(_read(rfile, p.OPT_HEADER.size))
            if magic != p.IHAVEOPT or length > _MAX_OPTION:
                raise _Abort()
            data = _read(rfile, length) if length else b""
            out: list[bytes] = []
            if opt == p.OPT_ABORT:
                conn.sendall(_reply(opt, p.REP_ACK))
                return None, conn, rfile
            if opt == p.OPT_STARTTLS:
                if self.tls is None:
                    conn.sendall(_reply(opt, p.REP_ERR_UNSUP, b"this NBD server does not offer TLS"))
                elif secured:
                    conn.sendall(_reply(opt, p.REP_ERR_INVALID, b"TLS is already negotiated"))
                elif data:
                    conn.sendall(_reply(opt, p.REP_ERR_INVALID, b"NBD_OPT_STARTTLS takes no data"))
                else:
                    conn, rfile = self._starttls(conn, rfile, key)
                    secured = True
                continue
            if not secured:
                if opt == p.OPT_EXPORT_NAME:
                    raise _Abort()  # no error reply exists for this option: hang up
                conn.sendall(_reply(opt, p.REP_ERR_TLS_REQD,
                                    b"this NBD server requires TLS: connect with nbds:// and a client certificate"))
                continue
            if opt == p.OPT_EXPORT_NAME:
                export = self._lookup(data.decode(errors="replace"))
                if export is None:
                    raise _Abort()  # the protocol has no error reply for this option
                conn.sendall(struct.pack(">QH", export.size, _flags(export)) + (b"" if no_zeroes else bytes(124)))
                return export, conn, rfile
            if opt == p.OPT_LIST:
                if not self.listable:
                    out.append(_reply(opt, p.REP_ERR_POLICY, b"this server does not list its exports"))
                elif data:
                    out.append(_reply(opt, p.REP_ERR_INVALID, b"NBD_OPT_LIST takes no data"))
                else:
                    for name in self.exports:
                        raw = name.encode()
                        out.append(_reply(opt, p.REP_SERVER, struct.pack(">I", len(raw)) + raw))
                    out.append(_reply(opt, p.REP_ACK))
            elif opt in (p.OPT_INFO, p.OPT_GO):
                export = self._info(out, opt, data)
                if export is not None and opt == p.OPT_GO:
                    conn.sendall(b"".join(out))
                    return export, conn, rfile
            else:
                out.append(_reply(opt, p.REP_ERR_UNSUP, b"option not supported by the Dialback tap"))
            conn.sendall(b"".join(out))

    def _lookup(self, name: str) -> ExportBackend | None:
        if name == "" and len(self.exports) == 1 and self.listable:
            return next(iter(self.exports.values()))
        return self.exports.get(name)

    def _info(self, out: list[bytes], opt: int, data: bytes) -> ExportBackend | None:
        try:
            (nlen,) = struct.unpack_from(">I", data, 0)
            name = data[4:4 + nlen].decode()
            (nreq,) = struct.unpack_from(">H", data, 4 + nlen)
            if len(data) != 4 + nlen + 2 + 2 * nreq:
                raise ValueError("length mismatch")
        except (struct.error, ValueError, UnicodeDecodeError):
            out.append(_reply(opt, p.REP_ERR_INVALID, b"malformed NBD_OPT_INFO/GO request"))
            return None
        export = self._lookup(name)
        if export is None:
            out.append(_reply(opt, p.REP_ERR_UNKNOWN, f"no export named {name!r}".encode()))
            return None
        out.append(_reply(opt, p.REP_INFO, p.EXPORT_INFO.pack(p.INFO_EXPORT, export.size, _flags(export))))
        # Our minimum is 1, so advertising sizes unasked is allowed by the spec.
        out.append(_reply(opt, p.REP_INFO,
                          p.BLOCK_SIZE_INFO.pack(p.INFO_BLOCK_SIZE, p.MIN_BLOCK, p.PREFERRED_BLOCK, p.MAX_BLOCK)))
        out.append(_reply(opt, p.REP_ACK))
        return export

    # -- transmission --------------------------------------------------------
    def _transmission(self, export: ExportBackend, conn: socket.socket, rfile) -> None:
        unpack = p.REQUEST.unpack
        reply = p.SIMPLE_REPLY.pack
        while True:
            magic, flags, cmd, cookie, offset, length = unpack(_read(rfile, p.REQUEST.size))
            if magic != p.REQUEST_MAGIC:
                raise _Abort()
            if cmd == p.CMD_DISC:
                return
            data = b""
            if cmd == p.CMD_WRITE:
                if length > p.MAX_BLOCK:
                    if length > _MAX_DISCARD:
                        raise _Abort()
                    _read(rfile, length)  # too big: drain it and answer EINVAL below
                else:
                    # Its own buffer, not the reused one: the spool's in-memory tail keeps the
                    # payload until ingest acknowledged it (agent/spool.py). No extra copy.
                    data = _read(rfile, length)
            err = self._check(export, cmd, offset, length)
            payload = b""
            if not err:
                try:
                    payload = self._dispatch(export, cmd, flags, offset, length, data)
                except OSError as exc:
                    log.warning("NBD command %d on %s failed: %s", cmd, export.name, exc)
                    err = exc.errno if exc.errno in (p.EIO, p.ENOSPC, p.EINVAL, p.ENOMEM, p.EPERM) else p.EIO
            conn.sendall(reply(p.SIMPLE_REPLY_MAGIC, err, cookie))
            if payload:
                conn.sendall(payload)

    @staticmethod
    def _check(export: ExportBackend, cmd: int, offset: int, length: int) -> int:
        if cmd not in (p.CMD_READ, p.CMD_WRITE, p.CMD_FLUSH, p.CMD_TRIM, p.CMD_WRITE_ZEROES):
            return p.EINVAL
        if cmd in (p.CMD_READ, p.CMD_WRITE) and length > p.MAX_BLOCK:
            return p.EOVERFLOW if cmd == p.CMD_READ else p.EINVAL
        if cmd != p.CMD_FLUSH and offset + length > export.size:
            return p.ENOSPC if cmd in (p.CMD_WRITE, p.CMD_WRITE_ZEROES) else p.EINVAL
        return 0

    @staticmethod
    def _dispatch(export: ExportBackend, cmd: int, flags: int, offset: int, length: int, data) -> bytes:
        if cmd == p.CMD_READ:
            return export.read(offset, length)
        if cmd == p.CMD_WRITE:
            export.write(offset, data)
        elif cmd == p.CMD_TRIM:
            export.trim(offset, length)
        elif cmd == p.CMD_WRITE_ZEROES:
            export.zeroes(offset, length, bool(flags & p.CMD_FLAG_NO_HOLE))
        if cmd == p.CMD_FLUSH or flags & p.CMD_FLAG_FUA:
            export.flush()
        return b""


def _reply(opt: int, rtype: int, data: bytes = b"") -> bytes:
    return p.OPT_REPLY.pack(p.OPT_REPLY_MAGIC, opt, rtype, len(data)) + data


def _read(rfile, n: int) -> bytes:
    data = rfile.read(n)
    if len(data) != n:
        raise EOFError(f"connection closed after {len(data)} of {n} bytes")
    return data


