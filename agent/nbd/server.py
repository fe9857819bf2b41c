"""Asyncio NBD server: fixed newstyle handshake, simple replies.

Each export is an :class:`ExportBackend`. Requests on one connection are
handled one after the other, so a write's reply is sent only after the
backend has applied and spooled it. Blocking durability work (FLUSH, FUA)
runs in a worker thread so a long fsync never stalls other connections or
the control API sharing the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import Protocol

from agent.nbd import protocol as p

log = logging.getLogger(__name__)

TRANSMISSION_FLAGS = (p.TFLAG_HAS_FLAGS | p.TFLAG_SEND_FLUSH | p.TFLAG_SEND_FUA
                      | p.TFLAG_SEND_TRIM | p.TFLAG_SEND_WRITE_ZEROES)
# A client announcing a payload larger than this is broken or hostile: we
# cannot skip it safely, so the connection is dropped.
_MAX_DISCARD = 64 << 20
_MAX_OPTION = 1 << 16


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
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[asyncio.Task] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=1 << 20)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("NBD server listening on %s:%d exports=%s", self.host, self.port, sorted(self.exports))
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._conns):
                task.cancel()
            await asyncio.gather(*self._conns, return_exceptions=True)
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._conns.add(task)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            export = await self._handshake(reader, writer)
            if export is not None:
                await self._transmission(export, reader, writer)
        except (_Abort, asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:  # one bad connection must not take the server down
            log.exception("NBD connection failed")
        finally:
            self._conns.discard(task)
            writer.close()

    # -- handshake -----------------------------------------------------------
    async def _handshake(self, reader, writer) -> ExportBackend | None:
        writer.write(p.NBDMAGIC + struct.pack(">QH", p.IHAVEOPT, p.FLAG_FIXED_NEWSTYLE | p.FLAG_NO_ZEROES))
        (cflags,) = struct.unpack(">I", await reader.readexactly(4))
        no_zeroes = bool(cflags & p.CFLAG_NO_ZEROES)
        if not cflags & p.CFLAG_FIXED_NEWSTYLE:
            raise _Abort()
        while True:
            magic, opt, length = p.OPT_HEADER.unpack(await reader.readexactly(p.OPT_HEADER.size))
            if magic != p.IHAVEOPT or length > _MAX_OPTION:
                raise _Abort()
            data = await reader.readexactly(length) if length else b""
            if opt == p.OPT_EXPORT_NAME:
                export = self._lookup(data.decode(errors="replace"))
                if export is None:
                    raise _Abort()  # the protocol has no error reply for this option
                writer.write(struct.pack(">QH", export.size, TRANSMISSION_FLAGS) + (b"" if no_zeroes else bytes(124)))
                return export
            if opt == p.OPT_ABORT:
                self._reply(writer, opt, p.REP_ACK)
                await writer.drain()
                return None
            if opt == p.OPT_LIST:
                if data:
                    self._reply(writer, opt, p.REP_ERR_INVALID, b"NBD_OPT_LIST takes no data")
                    continue
                for name in self.exports:
                    raw = name.encode()
                    self._reply(writer, opt, p.REP_SERVER, struct.pack(">I", len(raw)) + raw)
                self._reply(writer, opt, p.REP_ACK)
            elif opt in (p.OPT_INFO, p.OPT_GO):
                export = self._info(writer, opt, data)
                if export is not None and opt == p.OPT_GO:
                    await writer.drain()
                    return export
            else:
                self._reply(writer, opt, p.REP_ERR_UNSUP, b"option not supported by the Dialback tap")
            await writer.drain()

    def _lookup(self, name: str) -> ExportBackend | None:
        if name == "" and len(self.exports) == 1:
            return next(iter(self.exports.values()))
        return self.exports.get(name)

    def _info(self, writer, opt: int, data: bytes) -> ExportBackend | None:
        try:
            (nlen,) = struct.unpack_from(">I", data, 0)
            name = data[4:4 + nlen].decode()
            (nreq,) = struct.unpack_from(">H", data, 4 + nlen)
            if len(data) != 4 + nlen + 2 + 2 * nreq:
                raise ValueError("length mismatch")
        except (struct.error, ValueError, UnicodeDecodeError):
            self._reply(writer, opt, p.REP_ERR_INVALID, b"malformed NBD_OPT_INFO/GO request")
            return None
        export = self._lookup(name)
        if export is None:
            self._reply(writer, opt, p.REP_ERR_UNKNOWN, f"no export named {name!r}".encode())
            return None
        self._reply(writer, opt, p.REP_INFO, p.EXPORT_INFO.pack(p.INFO_EXPORT, export.size, TRANSMISSION_FLAGS))
        # Our minimum is 1, so advertising sizes unasked is allowed by the spec.
        self._reply(writer, opt, p.REP_INFO,
                    p.BLOCK_SIZE_INFO.pack(p.INFO_BLOCK_SIZE, p.MIN_BLOCK, p.PREFERRED_BLOCK, p.MAX_BLOCK))
        self._reply(writer, opt, p.REP_ACK)
        return export

    @staticmethod
    def _reply(writer, opt: int, rtype: int, data: bytes = b"") -> None:
        writer.write(p.OPT_REPLY.pack(p.OPT_REPLY_MAGIC, opt, rtype, len(data)) + data)

    # -- transmission --------------------------------------------------------
    async def _transmission(self, export: ExportBackend, reader, writer) -> None:
        unpack = p.REQUEST.unpack
        reply = p.SIMPLE_REPLY.pack
        while True:
            magic, flags, cmd, cookie, offset, length = unpack(await reader.readexactly(p.REQUEST.size))
            if magic != p.REQUEST_MAGIC:
                raise _Abort()
            if cmd == p.CMD_DISC:
                await writer.drain()
                return
            if cmd == p.CMD_WRITE:
                if length > _MAX_DISCARD:
                    raise _Abort()
                data = await reader.readexactly(length)
            err = self._check(export, cmd, offset, length)
            payload = b""
            if not err:
                try:
                    payload = await self._dispatch(export, cmd, flags, offset, length, data if cmd == p.CMD_WRITE else b"")
                except OSError as exc:
                    log.warning("NBD %s on %s failed: %s", cmd, export.name, exc)
                    err = exc.errno if exc.errno in (p.EIO, p.ENOSPC, p.EINVAL, p.ENOMEM, p.EPERM) else p.EIO
            writer.write(reply(p.SIMPLE_REPLY_MAGIC, err, cookie))
            if payload:
                writer.write(payload)
            if writer.transport.get_write_buffer_size() > (4 << 20):
                await writer.drain()
            elif not reader._buffer:  # nothing pipelined: make sure the reply leaves now
                await writer.drain()

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
    async def _dispatch(export: ExportBackend, cmd: int, flags: int, offset: int, length: int, data: bytes) -> bytes:
        if cmd == p.CMD_READ:
            return export.read(offset, length)
        if cmd == p.CMD_WRITE:
            export.write(offset, data)
        elif cmd == p.CMD_TRIM:
            export.trim(offset, length)
        elif cmd == p.CMD_WRITE_ZEROES:
            export.zeroes(offset, length, bool(flags & p.CMD_FLAG_NO_HOLE))
        if cmd == p.CMD_FLUSH or flags & p.CMD_FLAG_FUA:
            await asyncio.to_thread(export.flush)
        return b""
