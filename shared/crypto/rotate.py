"""Rotating the provider master key file (``dialback keys rotate-master``).

Order, so that a crash at any point leaves a keyring that one of the two key
files opens: (1) write the new key to ``<master>.new`` (0600, fsync);
(2) re-wrap every keyring entry under it and replace keyring.json (fsync);
(3) rename ``<master>.new`` over ``<master>``. :func:`finish_pending` completes
or discards a rotation a crash interrupted.
"""

from __future__ import annotations

import os
from pathlib import Path

from shared.crypto.keyring import Keyring, KeyringError, load_master_key, write_master_key


def pending_path(master: Path) -> Path:
    return master.with_name(master.name + ".new")


def finish_pending(master: Path, keyring: Path) -> str | None:
    """Complete or discard an interrupted rotation; returns what was done, or None."""
    new = pending_path(master)
    if not new.exists():
        return None
    try:
        Keyring(load_master_key(master), keyring).verify()
        new.unlink()  # crashed before the keyring was re-wrapped: the old key is still current
        return "discarded an unfinished rotation (the keyring was not re-wrapped yet)"
    except KeyringError:
        Keyring(load_master_key(new), keyring).verify()  # raises if neither key opens it
        os.replace(new, master)
        return "finished an interrupted rotation (the keyring was already re-wrapped)"


def rotate_master_file(master: Path, keyring: Path) -> int:
    """Replace the master key in ``master`` with a fresh one; returns how many keys were re-wrapped."""
    master, keyring = Path(master), Path(keyring)
    if not master.exists():
        raise KeyringError(f"no master key at {master}; create one with `dialback stack up` "
                           "or point DIALBACK_MASTER_KEY_FILE at it")
    finish_pending(master, keyring)
    ring = Keyring(load_master_key(master), keyring)
    ring.verify()  # refuse before writing anything if the current key does not open every entry
    new = pending_path(master)
    write_master_key(new)
    with open(new, "rb") as f:
        os.fsync(f.fileno())
    n = ring.rotate_master(load_master_key(new))
    os.replace(new, master)
    dir_fd = os.open(master.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return n
