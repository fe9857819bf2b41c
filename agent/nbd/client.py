"""A small blocking NBD client (fixed newstyle, OPT_GO, simple replies).

Used by the tests, benches and the lead's randomized tests::

    with connect(agent.nbd_socket, export="disk0") as nbd:   # or connect("127.0.0.1", port, "disk0")
        nbd.pwrite(b"x" * 4096, 0, fua=True)
        assert nbd.pread(4096, 0) == b"x" * 4096

Requests are issued one at a time; any non-zero reply error raises
:class:`NbdRequestError` carrying the errno the server sent.
"""

from __future__ import annotations

import itertools
import os
import socket
import ssl
import struct

from agent.nbd import protocol as p


class NbdClientError(Exception):
    """The server refused the handshake or broke the protocol."""


class NbdRequestError(NbdClientError):
    def __init__(self, command: str, errno: int):
        super().__init__(f"NBD {command} failed with errno {errno}")
        self.errno = errno


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise NbdClientError(f"server closed the connection ({got} of {n} bytes read)")
        got += k
    return bytes(buf)


class NbdClient:
    """One connection to one export; not thread-safe (one request at a time)."""

    def __init__(self, sock: socket.socket, export: str):
        self.sock = sock
        self.export = export
        self.size = 0
        self.flags = 0
        self.block_sizes: tuple[int, int, int] | None = None
        self._cookies = itertools.count(1)

    # -- handshake -----------------------------------------------------------
    def _handshake_start(self) -> None:
        head = _recv_exact(self.sock, 18)
        if head[:8] != p.NBDMAGIC or struct.unpack(">Q", head[8:16])[0] != p.IHAVEOPT:
            raise NbdClientError("not an NBD newstyle server (bad greeting magic)")
        (hflags,) = struct.unpack(">H", head[16:18])
        if not hflags & p.FLAG_FIXED_NEWSTYLE:
            raise NbdClientError("server does not speak fixed newstyle")
        self.sock.sendall(struct.pack(">I", p.CFLAG_FIXED_NEWSTYLE | (hflags & p.FLAG_NO_ZEROES)))

    def _send_opt(self, opt: int, data: bytes = b"") -> None:
        self.sock.sendall(p.OPT_HEADER.pack(p.IHAVEOPT, opt, len(data)) + data)

    def _read_opt_reply(self, opt: int) -> tuple[int, bytes]:
        magic, ropt, rtype, length = p.OPT_REPLY.unpack(_recv_exact(self.sock, p.OPT_REPLY.size))
        if magic != p.OPT_REPLY_MAGIC or ropt != opt:
            raise NbdClientError(f"bad option reply (magic {magic:#x}, option {ropt})")
        return rtype, _recv_exact(self.sock, length) if length else b""

    def _starttls(self, ctx: ssl.SSLContext, hostname: str | None) -> None:
        self._send_opt(p.OPT_STARTTLS)
        rtype, data = self._read_opt_reply(p.OPT_STARTTLS)
        if rtype != p.REP_ACK:
            raise NbdClientError(f"server refused NBD_OPT_STARTTLS: reply {rtype:#x} {data.decode(errors='replace')}")
        self.sock = ctx.wrap_socket(self.sock, server_hostname=hostname)

    def _go(self, opt: int = p.OPT_GO) -> None:
        name = self.export.encode()
        self._send_opt(opt, struct.pack(">I", len(name)) + name + struct.pack(">HH", 1, p.INFO_BLOCK_SIZE))
        while True:
            rtype, data = self._read_opt_reply(opt)
            if rtype == p.REP_ACK:
                return
            if rtype == p.REP_INFO:
                (itype,) = struct.unpack(">H", data[:2])
                if itype == p.INFO_EXPORT:
                    _, self.size, self.flags = p.EXPORT_INFO.unpack(data)
                elif itype == p.INFO_BLOCK_SIZE:
                    self.block_sizes = p.BLOCK_SIZE_INFO.unpack(data)[1:]
            elif rtype & (1 << 31):
                raise NbdClientError(f"export {self.export!r} refused: reply {rtype:#x} {data.decode(errors='replace')}")

    # -- transmission --------------------------------------------------------
    def _request(self, cmd: int, offset: int, length: int, flags: int = 0, data: bytes = b"",
                 read_len: int = 0, name: str = "") -> bytes:
        cookie = next(self._cookies)
        self.sock.sendall(p.REQUEST.pack(p.REQUEST_MAGIC, flags, cmd, cookie, offset, length))
        if data:
            self.sock.sendall(data)
        magic, err, rcookie = p.SIMPLE_REPLY.unpack(_recv_exact(self.sock, p.SIMPLE_REPLY.size))
        if magic != p.SIMPLE_REPLY_MAGIC or rcookie != cookie:
            raise NbdClientError(f"bad reply (magic {magic:#x}, cookie {rcookie} != {cookie})")
        if err:
            raise NbdRequestError(name, err)
        return _recv_exact(self.sock, read_len) if read_len else b""

    def pread(self, length: int, offset: int) -> bytes:
        return self._request(p.CMD_READ, offset, length, read_len=length, name="read")

    def pwrite(self, data: bytes, offset: int, fua: bool = False) -> None:
        self._request(p.CMD_WRITE, offset, len(data), p.CMD_FLAG_FUA if fua else 0, data=data, name="write")

    def trim(self, length: int, offset: int, fua: bool = False) -> None:
        self._request(p.CMD_TRIM, offset, length, p.CMD_FLAG_FUA if fua else 0, name="trim")

    def zero(self, length: int, offset: int, fua: bool = False, no_hole: bool = False) -> None:
        flags = (p.CMD_FLAG_FUA if fua else 0) | (p.CMD_FLAG_NO_HOLE if no_hole else 0)
        self._request(p.CMD_WRITE_ZEROES, offset, length, flags, name="write_zeroes")

    def flush(self) -> None:
        self._request(p.CMD_FLUSH, 0, 0, name="flush")

    def close(self) -> None:
        try:
            self.sock.sendall(p.REQUEST.pack(p.REQUEST_MAGIC, 0, p.CMD_DISC, next(self._cookies), 0, 0))
        except OSError:
            pass
        self.sock.close()

    def __enter__(self) -> "NbdClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _open(host: str | os.PathLike, port: int | None, timeout: float) -> socket.socket:
    if port is None:  # host is the path of a Unix socket
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(os.fspath(host))
        except BaseException:
            sock.close()
            raise
        return sock
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def connect(host: str | os.PathLike, port: int | None = None, export: str = "", timeout: float = 30.0, *,
            tls: ssl.SSLContext | None = None) -> NbdClient:
    """Connect and negotiate ``export`` with NBD_OPT_GO.

    ``port=None``: ``host`` is a Unix socket path (the agent's default). ``tls``: a client
    context (shared/nbd_tls.client_context); NBD_OPT_STARTTLS is negotiated first and the
    server's certificate is checked against ``host``.
    """
    client = NbdClient(_open(host, port, timeout), export)
    try:
        client._handshake_start()
        if tls is not None:
            client._starttls(tls, None if port is None else str(host))
        client._go()
    except BaseException:
        client.sock.close()
        raise
    return client


def list_exports(host: str | os.PathLike, port: int | None, timeout: float = 10.0) -> list[str]:
    """Names the server lists with NBD_OPT_LIST (then NBD_OPT_ABORT)."""
    client = NbdClient(_open(host, port, timeout), "")
    try:
        client._handshake_start()
        client._send_opt(p.OPT_LIST)
        names = []
        while True:
            rtype, data = client._read_opt_reply(p.OPT_LIST)
            if rtype == p.REP_ACK:
                break
            if rtype != p.REP_SERVER:
                raise NbdClientError(f"NBD_OPT_LIST refused: reply {rtype:#x}")
            (n,) = struct.unpack(">I", data[:4])
            names.append(data[4:4 + n].decode())
        client._send_opt(p.OPT_ABORT)
        try:
            client._read_opt_reply(p.OPT_ABORT)
        except (NbdClientError, OSError):
            pass  # the server may close right away, which is allowed
        return names
    finally:
        client.sock.close()


def raw_option(host: str | os.PathLike, port: int | None, opt: int, data: bytes = b"") -> int:
    """Send one option and return the server's reply type (for protocol tests)."""
    client = NbdClient(_open(host, port, 10.0), "")
    try:
        client._handshake_start()
        client._send_opt(opt, data)
        rtype, _ = client._read_opt_reply(opt)
        return rtype
    finally:
        client.sock.close()
