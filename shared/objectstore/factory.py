"""store_from_settings: the one place services obtain their ObjectStore.

Encryption at rest is ON when a master key file is configured
(DIALBACK_MASTER_KEY_FILE); the keyring of wrapped data keys lives next to it
(DIALBACK_KEYRING_FILE, default ``<dir of master key>/keyring.json``).
"""

from __future__ import annotations

import os
from pathlib import Path

from shared.crypto.keyring import Keyring, load_master_key
from shared.objectstore.base import ObjectStore
from shared.objectstore.encrypted import EncryptedObjectStore
from shared.objectstore.minio import MinioObjectStore


def keyring_from_env() -> Keyring | None:
    master = getattr_env("DIALBACK_MASTER_KEY_FILE")
    if not master:
        return None
    ring = getattr_env("DIALBACK_KEYRING_FILE") or str(Path(master).parent / "keyring.json")
    return Keyring(load_master_key(master), ring)


def getattr_env(name: str) -> str:
    return os.environ.get(name, "").strip()


def wrap(inner: ObjectStore) -> ObjectStore:
    ring = keyring_from_env()
    return EncryptedObjectStore(inner, ring) if ring else inner


def store_from_settings(settings) -> ObjectStore:
    return wrap(MinioObjectStore.from_settings(settings))
