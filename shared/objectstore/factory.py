"""store_from_settings: the one place services obtain their ObjectStore.

Encryption at rest is ON when a master key file is configured
(DIALBACK_MASTER_KEY_FILE); the keyring of wrapped data keys lives next to it
(DIALBACK_KEYRING_FILE, default ``<dir of master key>/keyring.json``).
"""

from __future__ import annotations

import os
from pathlib import Path

from shared.crypto.keyring import Keyring, load_master_key
from shared.objectstore.base import ObjectStore, PermanentStoreError
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


class NoTenantBucket(PermanentStoreError):
    """The tenant has no bucket in the configured object store."""


def open_tenant_bucket(settings, tenant: str) -> tuple[ObjectStore, str]:
    """(store, bucket) of ``tenant`` for operator commands; NoTenantBucket says what to check."""
    from shared.tenancy import tenant_bucket

    bucket = tenant_bucket(tenant, settings.bucket_prefix)
    store = store_from_settings(settings)
    if not store.bucket_exists(bucket):
        raise NoTenantBucket(f"tenant {tenant!r} has no bucket {bucket!r}; check the tenant id "
                             "and DIALBACK_S3_* / DIALBACK_BUCKET_PREFIX")
    return store, bucket
