"""keyring.json on disk: an exclusive cross-process lock, reads, and durable atomic replaces.

Contract: every read-modify-write of keyring.json happens inside
:func:`locked` (an ``fcntl.flock`` on ``keyring.json.lock``, held by one
process at a time, released when the process dies), so an entry another
process added is never overwritten by a stale copy. :func:`replace_durably`
writes a uniquely named temporary file in the same directory, fsyncs it,
renames it over the target and fsyncs the directory: a reader sees the old
or the new file, never a mix, and once it returns the new file survives a
power loss. Readers need no lock (rename is atomic).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

from shared.errors import DialbackError


class KeyringError(DialbackError):
    """A keyring that cannot be read, written or opened (re-exported by shared.crypto.keyring)."""


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the exclusive lock of keyring file ``path`` (blocks until it is free)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def read_wrapped(path: Path) -> tuple[dict[str, str], tuple[int, int, int] | None]:
    """(entries, stamp) of keyring file ``path``; ({}, None) when it does not exist."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            raw = f.read()
    except FileNotFoundError:
        return {}, None
    try:
        wrapped = json.loads(raw)["wrapped"]
    except (ValueError, KeyError, TypeError) as err:
        raise KeyringError(
            f"keyring file {path} is not a valid keyring (cannot parse its JSON); restore it from a "
            "backup: without it the data sealed under its keys cannot be decrypted"
        ) from err
    if not isinstance(wrapped, dict):
        raise KeyringError(f"keyring file {path} has no 'wrapped' entries map; restore it from a backup")
    return wrapped, (st.st_mtime_ns, st.st_size, st.st_ino)


def replace_durably(path: Path, wrapped: dict[str, str]) -> None:
    """Atomically and durably replace ``path`` with a keyring holding ``wrapped`` (0600)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"version": 1, "wrapped": wrapped}, f)
            f.flush()
            os.fsync(f.fileno())  # the content is durable before the rename makes it current
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power loss
    finally:
        os.close(dir_fd)
