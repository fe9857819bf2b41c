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
import socket
import struct
import threading
from typing import Protocol

from agent.nbd import protocol as p

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
    def __init__(self, exports: dict[str, ExportBackend], host: str = "127.0.0.1", port: int = 10809):
        self.exports = exports
        self.host = host
        self.port = port
        self._sock: socket.socket | None = None
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._lock = threading.Lock()
        self._closing = False
        self._acceptor: threading.Thread | None = None

    def start_sync(self) -> int:
        try:
            sock = socket.create_server((self.host, self.port))
        except OSError as err:
            raise OSError(err.errno, f"cannot listen on {self.host}:{self.port} for NBD ({err.strerror}); "
                                     "pick another --nbd-port") from err
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"nbd-accept-{self.port}", daemon=True)
        self._acceptor.start()
        log.info("NBD server listening on %s:%d exports=%s", self.host, self.port, sorted(self.exports))
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
            self._sock.close()
        with self._lock:
            conns = list(self._conns.items())
        for conn, _ in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for _, thread in conns:
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
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            thread = threading.Thread(target=self._serve, args=(conn,), name="nbd-conn", daemon=True)
            with self._lock:
                self._conns[conn] = thread
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            rfile = conn.makefile("rb", buffering=1 << 16)
            export = self._handshake(conn, rfile)
            if export is not None:
                self._transmission(export, conn, rfile)
        except (_Abort, EOFError, ConnectionError, OSError):
            pass
        except Exception:  # one bad connection must not take the server down
            log.exception("NBD connection failed")
        finally:
            with self._lock:
                self._conns.pop(conn, None)
            conn.close()

    # -- handshake -----------------------------------------------------------
    def _handshake(self, conn: socket.socket, rfile) -> ExportBackend | None:
        conn.sendall(p.NBDMAGIC + struct.pack(">QH", p.IHAVEOPT, p.FLAG_FIXED_NEWSTYLE | p.FLAG_NO_ZEROES))
        (cflags,) = struct.unpack(">I", _read(rfile, 4))
        no_zeroes = bool(cflags & p.CFLAG_NO_ZEROES)
        if not cflags & p.CFLAG_FIXED_NEWSTYLE:
            raise _Abort()
        while True:
            magic, opt, length = p.OPT_HEADER.unpack(_read(rfile, p.OPT_HEADER.size))
            if magic != p.IHAVEOPT or length > _MAX_OPTION:
                raise _Abort()
            data = _read(rfile, length) if length else b""
            out: list[bytes] = []
            if opt == p.OPT_EXPORT_NAME:
                export = self._lookup(data.decode(errors="replace"))
                if export is None:
                    raise _Abort()  # the protocol has no error reply for this option
                conn.sendall(struct.pack(">QH", export.size, _flags(export)) + (b"" if no_zeroes else bytes(124)))
                return export
            if opt == p.OPT_ABORT:
                conn.sendall(_reply(opt, p.REP_ACK))
                return None
            if opt == p.OPT_LIST:
                if data:
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
                    return export
            else:
                out.append(_reply(opt, p.REP_ERR_UNSUP, b"option not supported by the Dialback tap"))
            conn.sendall(b"".join(out))

    def _lookup(self, name: str) -> ExportBackend | None:
        if name == "" and len(self.exports) == 1:
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


