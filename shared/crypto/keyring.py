"""Keyring: per-bucket (per-tenant) data keys wrapped by the provider master key.

Persisted as a JSON file (``$DIALBACK_HOME/keyring.json``) holding only WRAPPED
keys; the master key lives in its own 0600 file (DIALBACK_MASTER_KEY_FILE).
Rotating the master key re-wraps every data key; no object is rewritten.
Key bytes never appear in reprs, logs or error texts.

Several processes share one keyring file (ingest, retention, recovery,
`dialback tenant create`). Creating an entry re-reads the file, adds the
entry and replaces the file under an exclusive cross-process lock, then
re-reads the file to confirm the entry is there before the key is handed
out: a key a caller receives is on disk, so data sealed under it decrypts
after any restart. Entries are never removed; rotation re-wraps them.
"""

from __future__ import annotations

import base64
import os
import secrets
import threading
from pathlib import Path
from typing import Callable, Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.crypto.keyring_file import KeyringError, locked, read_wrapped, replace_durably
from shared.tenancy import tenant_bucket

__all__ = ["Keyring", "KeyringError", "bus_entry", "ensure_master_key", "load_master_key", "tenant_entries",
           "transport_entry", "write_master_key"]


def _aad(bucket: str) -> bytes:
    # binds a wrapped key to its tenant bucket: a wrapped key copied to
    # another tenant's entry does not unwrap.
    return b"dialback-data-key\x00" + bucket.encode()


def transport_entry(tenant: str) -> str:
    """Keyring entry of a tenant's transport key (":" never occurs in bucket names)."""
    return "transport:" + tenant


def bus_entry(tenant: str) -> str:
    """Keyring entry of the key that seals a tenant's records in Kafka (shared.crypto.bus)."""
    return "bus:" + tenant


def tenant_entries(tenant: str, bucket_prefix: str = "dialback-") -> tuple[str, ...]:
    """Every keyring entry a tenant's data needs: its transport key, its bus key and its bucket's data key.

    `dialback tenant create` creates all of them, so services find them
    instead of creating one lazily while other processes do the same.
    """
    return transport_entry(tenant), bus_entry(tenant), tenant_bucket(tenant, bucket_prefix)


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
    """Wrapped per-entry keys; with ``path``, shared with other processes through that file."""

    def __init__(self, master_key: bytes, path: str | Path | None = None) -> None:
        if len(master_key) != 32:
            raise KeyringError("master key must be 32 bytes")
        self._master = AESGCM(master_key)
        self._path = Path(path) if path else None
        self._wrapped: dict[str, str] = {}
        self._cache: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._mem_changes = 0  # an in-memory keyring has no file stamp: count its changes for entries()
        if self._path:
            self._wrapped, self._stamp = read_wrapped(self._path)

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
        """The key of entry ``bucket``, created (and durably stored) when it has none.

        Contract: the returned key is in the keyring file when this returns
        (confirmed by a re-read); if that cannot be confirmed KeyringError is
        raised and no key is returned. Concurrent callers in any process
        asking for the same entry all get the same key.
        """
        with self._lock:
            if bucket in self._cache:
                return self._cache[bucket]
            self._reload_if_changed()  # an existing entry needs no lock: entries are never removed
            key = self._wrapped_key(bucket) or self._create(bucket)
            self._cache[bucket] = key
            return key

    def _create(self, bucket: str) -> bytes:
        if self._path is None:  # in-memory keyring (tests, benches): nothing to share
            return self._add(bucket)
        with locked(self._path):
            self._wrapped, self._stamp = read_wrapped(self._path)  # entries other processes added
            return self._wrapped_key(bucket) or self._add(bucket)

    def ensure(self, *names: str) -> None:
        """Create every missing entry of ``names``; when this returns all of them are stored (confirmed)."""
        for n in names:
            self.data_key(n)

    def _wrapped_key(self, bucket: str) -> bytes | None:
        blob = self._wrapped.get(bucket)
        return None if blob is None else self._unwrap(bucket, blob)

    def _add(self, bucket: str) -> bytes:
        # called with the file lock held and self._wrapped freshly read
        if self._wrapped:  # refuse to mix masters in one file (another process rotated it)
            name, blob = next(iter(self._wrapped.items()))
            try:
                self._unwrap(name, blob)
            except KeyringError as err:
                raise KeyringError(
                    f"keyring file {self._path} is wrapped under another master key (rotated since this "
                    f"process started?); no key was created for {bucket!r}: restart with the current master key"
                ) from err
        key = secrets.token_bytes(32)
        blob = self._wrap(self._master, bucket, key)
        if self._path is None:
            self._wrapped[bucket] = blob
            self._mem_changes += 1
            return key
        # self._wrapped stays the on-disk view until the entry is confirmed there,
        # so an unconfirmed key is never found by a later call.
        replace_durably(self._path, {**self._wrapped, bucket: blob})
        self._wrapped, self._stamp = read_wrapped(self._path)
        if self._wrapped.get(bucket) != blob:
            raise KeyringError(
                f"the new key of {bucket!r} is not in keyring file {self._path} after writing it; "
                "nothing was sealed under it; check the file is not replaced by another tool and retry"
            )
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
            key = self._wrapped_key(name)
            if key is not None:
                self._cache[name] = key
            return key

    # -- entry management used by shared.crypto.data_keys (data key generations) --

    def entries(self, since: object = None) -> tuple[object, tuple[str, ...] | None]:
        """(token, entry names) of the keyring file, re-read when it changed; names None if token == since.

        The token changes whenever the set of entries may have changed (in
        this or another process), so a caller can keep an index of the names
        and rebuild it only then. No file lock: the rename is atomic.
        """
        with self._lock:
            self._reload_if_changed()
            token = (self._stamp, self._mem_changes)
            return token, (None if token == since else tuple(self._wrapped))

    def add_entry(self, choose: Callable[[Iterable[str]], str | None]) -> str | None:
        """Create the entry ``choose(names)`` names, deciding from a fresh read under the file lock.

        ``choose`` sees the names on disk and returns the name of a new entry,
        or None to add nothing (returned as is). Same contract as data_key:
        the new key is confirmed on disk before this returns.
        """
        with self._lock:
            if self._path is None:
                name = choose(tuple(self._wrapped))
                if name is not None and name not in self._wrapped:
                    self._cache[name] = self._add(name)
                return name
            with locked(self._path):
                self._wrapped, self._stamp = read_wrapped(self._path)
                name = choose(tuple(self._wrapped))
                if name is not None and name not in self._wrapped:
                    self._cache[name] = self._add(name)
                return name

    def remove_entries(self, names: Iterable[str]) -> int:
        """Delete entries ``names`` from the keyring file (durably, confirmed); returns how many were there.

        The one exception to "entries are never removed": retiring data key
        generations no object is sealed under any more (`dialback keys rekey
        --retire`). Data sealed under a removed key can never be opened again.
        """
        gone = set(names)
        with self._lock:
            for n in gone:
                self._cache.pop(n, None)
            if self._path is None:
                before = len(self._wrapped)
                self._wrapped = {k: v for k, v in self._wrapped.items() if k not in gone}
                self._mem_changes += 1
                return before - len(self._wrapped)
            with locked(self._path):
                self._wrapped, self._stamp = read_wrapped(self._path)
                kept = {k: v for k, v in self._wrapped.items() if k not in gone}
                n = len(self._wrapped) - len(kept)
                if n:
                    replace_durably(self._path, kept)
                    self._wrapped, self._stamp = read_wrapped(self._path)
                if gone & set(self._wrapped):
                    raise KeyringError(f"keyring file {self._path} still holds retired entries after rewriting it; "
                                       "check it is not replaced by another tool and retry")
                return n

    def verify(self) -> int:
        """Unwrap every entry of the keyring file (KeyringError if one does not); returns how many."""
        with self._lock:
            self._reload_if_changed()
            return len([self._unwrap(b, w) for b, w in self._wrapped.items()])

    def _reload_if_changed(self) -> None:
        if not self._path:
            return
        try:
            st = self._path.stat()
        except FileNotFoundError:
            return
        if (st.st_mtime_ns, st.st_size, st.st_ino) != self._stamp:
            self._wrapped, self._stamp = read_wrapped(self._path)

    def rotate_master(self, new_master_key: bytes) -> int:
        """Re-wrap every data key under ``new_master_key``; returns how many.

        Under the file lock and from a fresh read, so an entry another process
        added since this keyring was loaded is re-wrapped too, not dropped.
        The new file is durable (fsynced) when this returns: the caller renames
        the new master key file over the old one only after that.
        """
        new = AESGCM(new_master_key)
        with self._lock:
            if self._path is None:
                return self._rewrap(new)
            with locked(self._path):
                self._wrapped, self._stamp = read_wrapped(self._path)
                n = self._rewrap(new)
                replace_durably(self._path, self._wrapped)
                self._wrapped, self._stamp = read_wrapped(self._path)
                return n

    def _rewrap(self, new: AESGCM) -> int:
        keys = {b: self._unwrap(b, w) for b, w in self._wrapped.items()}
        self._wrapped = {b: self._wrap(new, b, k) for b, k in keys.items()}
        self._master = new
        self._cache = keys
        return len(keys)
