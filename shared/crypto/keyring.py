"""Keyring: per-bucket (per-tenant) data keys wrapped by the provider master key.

Persisted as a JSON file (``$DIALBACK_HOME/keyring.json``) holding only WRAPPED
keys; the master key lives in its own 0600 file (DIALBACK_MASTER_KEY_FILE).
Rotating the master key re-wraps every data key; no object is rewritten.
Key bytes never appear in reprs, logs or error texts.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.errors import DialbackError


class KeyringError(DialbackError):
    pass


def _aad(bucket: str) -> bytes:
    # binds a wrapped key to its tenant bucket: a wrapped key copied to
    # another tenant's entry does not unwrap.
    return b"dialback-data-key\x00" + bucket.encode()


def transport_entry(tenant: str) -> str:
    """Keyring entry of a tenant's transport key (":" never occurs in bucket names)."""
    return "transport:" + tenant


def load_master_key(path: str | Path) -> bytes:
    raw = Path(path).read_bytes().strip()
    try:
        key = base64.b64decode(raw, validate=True) if len(raw) != 32 else raw
    except ValueError:
        raise KeyringError(f"master key file {path} is not base64; regenerate it with `dialback stack up`") from None
    if len(key) != 32:
        raise KeyringError(f"master key file {path} must hold 32 bytes (base64); regenerate it")
    return key


def write_master_key(path: str | Path) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(base64.b64encode(secrets.token_bytes(32)) + b"\n")
    os.chmod(p, 0o600)


def ensure_master_key(home: str | Path) -> Path:
    """``home/master.key`` (0600), generated when missing and never overwritten; returns its path."""
    path = Path(home) / "master.key"
    if not path.exists():
        write_master_key(path)
    return path


class Keyring:
    def __init__(self, master_key: bytes, path: str | Path | None = None) -> None:
        if len(master_key) != 32:
            raise KeyringError("master key must be 32 bytes")
        self._master = AESGCM(master_key)
        self._path = Path(path) if path else None
        self._wrapped: dict[str, str] = {}
        self._cache: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        if self._path and self._path.exists():
            self._wrapped = json.loads(self._path.read_text())["wrapped"]

    def __repr__(self) -> str:
        return f"Keyring(path={self._path}, tenants={len(self._wrapped)})"

    def _unwrap(self, bucket: str, blob: str) -> bytes:
        raw = base64.b64decode(blob)
        try:
            return self._master.decrypt(raw[:12], raw[12:], _aad(bucket))
        except InvalidTag:
            raise KeyringError(
                f"the data key of bucket {bucket!r} does not unwrap with this master key; "
                "check DIALBACK_MASTER_KEY_FILE points at the current master key"
            ) from None

    def _wrap(self, master: AESGCM, bucket: str, key: bytes) -> str:
        nonce = secrets.token_bytes(12)
        return base64.b64encode(nonce + master.encrypt(nonce, key, _aad(bucket))).decode()

    def data_key(self, bucket: str) -> bytes:
        with self._lock:
            if bucket in self._cache:
                return self._cache[bucket]
            if self._path and self._path.exists():  # another process may have added it
                self._wrapped = json.loads(self._path.read_text())["wrapped"]
            if bucket in self._wrapped:
                key = self._unwrap(bucket, self._wrapped[bucket])
            else:
                key = secrets.token_bytes(32)
                self._wrapped[bucket] = self._wrap(self._master, bucket, key)
                self._save()
            self._cache[bucket] = key
            return key

    def find(self, name: str) -> bytes | None:
        """The existing key of entry ``name`` or None; never creates one.

        Re-reads the keyring file when it changed (an entry added by another
        process, e.g. `dialback tenant create`, is seen without a restart).
        """
        with self._lock:
            if name in self._cache:
                return self._cache[name]
            self._reload_if_changed()
            blob = self._wrapped.get(name)
            if blob is None:
                return None
            key = self._unwrap(name, blob)
            self._cache[name] = key
            return key

    def verify(self) -> int:
        """Unwrap every entry (KeyringError if one does not); returns how many."""
        with self._lock:
            return len([self._unwrap(b, w) for b, w in self._wrapped.items()])

    def _reload_if_changed(self) -> None:
        if not self._path:
            return
        try:
            st = self._path.stat()
        except FileNotFoundError:
            return
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp != self._stamp:
            self._wrapped = json.loads(self._path.read_text())["wrapped"]
            self._stamp = stamp

    def rotate_master(self, new_master_key: bytes) -> int:
        """Re-wrap every data key under ``new_master_key``; returns how many."""
        new = AESGCM(new_master_key)
        with self._lock:
            keys = {b: self._unwrap(b, w) for b, w in self._wrapped.items()}
            self._wrapped = {b: self._wrap(new, b, k) for b, k in keys.items()}
            self._master = new
            self._cache = keys
            self._save()
            return len(keys)

    def _save(self) -> None:
        if not self._path:
            return
        tmp = self._path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"version": 1, "wrapped": self._wrapped}, f)
            f.flush()
            os.fsync(f.fileno())  # rotate-master renames the new master key only after this is durable
        os.replace(tmp, self._path)
