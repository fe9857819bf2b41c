"""Sealing the records of ``dialback.<tenant>.writes`` under the tenant's bus key (docs/encryption.md, "Kafka").

Ingest validates a batch in the clear (CRCs, sequences) and then seals the
record value: AES-256-GCM under the tenant's **bus key** (keyring entry
``bus:<tenant>``), one call per record. The record keeps what routing needs in
the clear: its key (the group) and the ``first_seq``/``last_seq`` headers. The
nonce travels in a header too, so the value is exactly ciphertext + tag, as
AESGCM returns it (no copy to put a prefix in front)::

    header  dialback-seal = "DBK1" | nonce (12 B)
    value   = AES-GCM(bus key, nonce, batch, AAD)
    AAD     = "dialback-bus-v1" \\0 tenant \\0 group \\0 first_seq (u64 BE) | last_seq (u64 BE)

A record copied to another tenant's topic, keyed to another group or given
other sequence headers does not open. Invariant: with a master key configured
every record is sealed, and a plaintext record in the topic is refused
(:class:`BusSealError`), never read; without one (tests, a stack run without
encryption) records are plaintext and a sealed one is refused the same way.
Errors never carry key bytes.
"""

from __future__ import annotations

import secrets
import struct
import threading
from typing import Iterable, Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.crypto.keyring import Keyring, KeyringError, bus_entry
from shared.errors import DialbackError

SEAL_HEADER = "dialback-seal"
MAGIC = b"DBK1"
_LABEL = b"dialback-bus-v1"

Headers = Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None


class BusSealError(DialbackError):
    """A writes-topic record that cannot be opened: not sealed when it must be, sealed when it cannot be, or altered."""


def header(headers: Headers, name: str) -> bytes | None:
    """A header's value from confluent-kafka's list, aiokafka's tuple or a dict (None if absent)."""
    if not headers:
        return None
    if isinstance(headers, Mapping):
        v = headers.get(name)
        return None if v is None else bytes(v)
    for k, v in headers:
        if k == name:
            return None if v is None else bytes(v)
    return None


def _aad(tenant: str, group: str, first: int, last: int) -> bytes:
    return b"\x00".join((_LABEL, tenant.encode(), group.encode(), struct.pack(">QQ", first, last)))


def _seq(headers: Headers, name: str) -> int:
    raw = header(headers, name)
    try:
        return int(raw) if raw is not None else -1
    except ValueError:
        return -1


class BusSeal:
    """Seals (ingest) and opens (retention) writes-topic records; ``ring`` None = plaintext mode.

    ``create``: make the tenant's bus key when it has none yet (ingest, for a tenant created
    before bus keys existed); consumers only ever find keys. Thread-safe.
    """

    def __init__(self, ring: Keyring | None, create: bool = False) -> None:
        self.ring, self.create = ring, create
        self._aead: dict[str, AESGCM] = {}
        self._lock = threading.Lock()

    @property
    def sealing(self) -> bool:
        return self.ring is not None

    def _key(self, tenant: str) -> AESGCM:
        aead = self._aead.get(tenant)
        if aead is not None:
            return aead
        assert self.ring is not None
        try:
            key = self.ring.data_key(bus_entry(tenant)) if self.create else self.ring.find(bus_entry(tenant))
        except KeyringError as err:
            raise BusSealError(f"cannot get the bus key of tenant {tenant!r}: {err}") from err
        if key is None:
            raise BusSealError(
                f"tenant {tenant!r} has no bus key in the keyring, so its sealed records cannot be opened; "
                "check that DIALBACK_MASTER_KEY_FILE and DIALBACK_KEYRING_FILE name the same files as ingest's")
        with self._lock:
            return self._aead.setdefault(tenant, AESGCM(key))

    def seal(self, tenant: str, group: str, first: int, last: int, batch: bytes) -> tuple[bytes, list]:
        """(value, headers) of the record for ``batch`` (first..last of ``group``)."""
        headers = [("first_seq", str(first).encode()), ("last_seq", str(last).encode())]
        if self.ring is None:
            return batch, headers
        nonce = secrets.token_bytes(12)
        value = self._key(tenant).encrypt(nonce, batch, _aad(tenant, group, first, last))
        headers.append((SEAL_HEADER, MAGIC + nonce))
        return value, headers

    def open(self, tenant: str, group: str, value: bytes, headers: Headers) -> bytes:
        """The batch inside a record; BusSealError (saying what to check) when it may not or cannot be read."""
        seal = header(headers, SEAL_HEADER)
        if self.ring is None:
            if seal is not None:
                raise BusSealError(
                    f"a record of tenant {tenant!r} group {group!r} is sealed, but this process has no master "
                    "key: set DIALBACK_MASTER_KEY_FILE (and DIALBACK_KEYRING_FILE) as for ingest")
            return value
        if seal is None:
            raise BusSealError(
                f"a record of tenant {tenant!r} group {group!r} is plaintext, but with a master key configured "
                "every record must be sealed by ingest; refused. Check that ingest runs with "
                "DIALBACK_MASTER_KEY_FILE and that nothing else produces to the writes topic")
        first, last = _seq(headers, "first_seq"), _seq(headers, "last_seq")
        if len(seal) != 16 or seal[:4] != MAGIC or first < 0 or last < 0:
            raise BusSealError(f"a record of tenant {tenant!r} group {group!r} has a malformed seal header "
                               f"or sequence headers; refused")
        try:
            return self._key(tenant).decrypt(seal[4:], value, _aad(tenant, group, first, last))
        except InvalidTag:
            raise BusSealError(
                f"record {first}-{last} of tenant {tenant!r} group {group!r} does not authenticate with the "
                "tenant's bus key: it was altered, or moved from another tenant, group or sequence range") from None
