"""Listening Unix sockets that only their owner can connect to.

``listen_unix(path)`` binds, sets mode 0600 and only then listens: a
connect() before listen() is refused, so no other user can slip in between
bind and chmod. A socket file left by a process that died is replaced; one
that still answers is refused (another process serves there); a path that
is not a socket is never touched.
"""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

MAX_PATH = 107  # sun_path is 108 bytes with the terminating NUL


def listen_unix(path: str | os.PathLike, what: str, setting: str, backlog: int = 64) -> socket.socket:
    """A listening AF_UNIX socket at ``path``, mode 0600, owned by this process's user.

    ``what`` and ``setting`` name the server and its setting in error messages.
    """
    p = Path(path)
    if len(os.fsencode(p)) > MAX_PATH:
        raise OSError(f"the {what} socket path {p} is longer than {MAX_PATH} bytes, the limit of Unix "
                      f"sockets; set {setting} to a shorter path")
    p.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale(p, what, setting)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(p))
        os.chmod(p, 0o600)
        sock.listen(backlog)
    except OSError as err:
        sock.close()
        raise OSError(err.errno, f"cannot listen on {p} for the {what} ({err.strerror}); set {setting}") from err
    return sock


def _clear_stale(p: Path, what: str, setting: str) -> None:
    try:
        st = p.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(f"{p} exists and is not a socket; the {what} will not replace it: set {setting} "
                      "to another path")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(p))
    except (ConnectionRefusedError, FileNotFoundError):
        p.unlink(missing_ok=True)  # left by a process that died
        return
    finally:
        probe.close()
    raise OSError(f"another process already serves on {p}; stop it or set {setting} to another path")


def remove(sock: socket.socket | None, path: str | os.PathLike | None) -> None:
    """Close a socket made by :func:`listen_unix` and delete its file (if it is still ours)."""
    if sock is not None:
        sock.close()
    if path is not None:
        try:
            if stat.S_ISSOCK(Path(path).lstat().st_mode):
                Path(path).unlink()
        except FileNotFoundError:
            pass
