"""One ObjectStore contract, run on every adapter (memory and the real MinIO)."""

from __future__ import annotations

import secrets
import time
import uuid

import pytest

from shared.objectstore import ObjectNotFound, ObjectStore
from shared.objectstore.memory import MemoryObjectStore


@pytest.fixture(params=["memory", pytest.param("minio", marks=pytest.mark.integration),
                        "encrypted-memory", pytest.param("encrypted-minio", marks=pytest.mark.integration),
                        pytest.param("encrypted-rotated-minio", marks=pytest.mark.integration), "cached-memory"])
def store(request, tmp_path) -> ObjectStore:
    if request.param == "cached-memory":
        # the read cache for immutable documents must honour the same contract
        from shared.objectstore.cached import CachedObjectStore
        return CachedObjectStore(MemoryObjectStore(), cacheable=lambda key: True)
    if request.param.endswith("memory"):
        inner = MemoryObjectStore()
    else:
        inner = request.getfixturevalue("minio_store")
    if request.param.startswith("encrypted"):
        # the at-rest wrapper must honour the same contract as the raw adapters
        from shared.crypto.keyring import Keyring
        from shared.objectstore.encrypted import EncryptedObjectStore
        ring = Keyring(secrets.token_bytes(32), tmp_path / "keyring.json")
        if "rotated" not in request.param:
            return EncryptedObjectStore(inner, ring)

        class Rotated(EncryptedObjectStore):  # every bucket sealed under data key generation 3, rotated twice
            def ensure_bucket(self, bucket: str) -> None:
                super().ensure_bucket(bucket)
                while self.data_keys.current(bucket)[0] < 3:
                    self.data_keys.rotate(bucket)

        return Rotated(inner, ring)
    return inner


@pytest.fixture
def bucket(store: ObjectStore) -> str:
    name = f"contract-{uuid.uuid4().hex[:12]}"
    store.ensure_bucket(name)
    return name


def test_ensure_bucket_is_idempotent(store, bucket):
    store.ensure_bucket(bucket)
    assert store.bucket_exists(bucket)
    assert not store.bucket_exists(f"missing-{uuid.uuid4().hex[:8]}")


def test_put_get_roundtrip_and_replace(store, bucket):
    store.put(bucket, "a/b.bin", b"first")
    assert store.get(bucket, "a/b.bin") == b"first"
    store.put(bucket, "a/b.bin", b"second, longer")
    assert store.get(bucket, "a/b.bin") == b"second, longer"
    assert store.stat(bucket, "a/b.bin").size == len(b"second, longer")


def test_empty_and_binary_objects(store, bucket):
    blob = bytes(range(256)) * 64
    store.put(bucket, "empty", b"")
    store.put(bucket, "blob", blob)
    assert store.get(bucket, "empty") == b""
    assert store.get(bucket, "blob") == blob


def test_get_range(store, bucket):
    data = bytes(range(200))
    store.put(bucket, "r", data)
    assert store.get_range(bucket, "r", 10, 5) == data[10:15]
    assert store.get_range(bucket, "r", 190, 50) == data[190:]


def test_missing_key_raises_not_found(store, bucket):
    for op in (lambda: store.get(bucket, "nope"), lambda: store.stat(bucket, "nope"),
               lambda: store.get_range(bucket, "nope", 0, 4)):
        with pytest.raises(ObjectNotFound):
            op()
    assert not store.exists(bucket, "nope")


def test_delete_is_idempotent(store, bucket):
    store.put(bucket, "x", b"1")
    store.delete(bucket, "x")
    store.delete(bucket, "x")
    assert not store.exists(bucket, "x")
    with pytest.raises(ObjectNotFound):
        store.get(bucket, "x")


def test_list_sorted_by_key_with_prefix_and_start_after(store, bucket):
    keys = [f"groups/g/journal/{i:020d}.seg" for i in (5, 1, 30, 2)] + ["groups/h/other"]
    for k in keys:
        store.put(bucket, k, k.encode())
    listed = [o.key for o in store.list(bucket, "groups/g/")]
    assert listed == sorted(k for k in keys if k.startswith("groups/g/"))
    assert [o.size for o in store.list(bucket, "groups/h/")] == [len("groups/h/other")]
    after = [o.key for o in store.list(bucket, "groups/g/", start_after=listed[1])]
    assert after == listed[2:]


def test_list_many_objects_pages(store, bucket):
    for i in range(1100):  # past S3's 1000-key page
        store.put(bucket, f"p/{i:05d}", b"")
    assert [o.key for o in store.list(bucket, "p/")] == [f"p/{i:05d}" for i in range(1100)]


def test_list_and_stat_report_modification_time(store, bucket):
    # The store's clock, not ours: allow a little skew (MinIO on loopback shares this clock).
    before = time.time_ns() - 5 * 10**9
    store.put(bucket, "m/a", b"one")
    after = time.time_ns() + 5 * 10**9
    listed = next(iter(store.list(bucket, "m/")))
    assert before <= listed.modified_ns <= after
    assert abs(store.stat(bucket, "m/a").modified_ns - listed.modified_ns) < 2 * 10**9


def test_list_prefixes_one_level(store, bucket):
    for k in ("groups/a/manifest.json", "groups/a/bases/1.json", "groups/b/bases/1.json", "groups/c/x",
              "groups/top.json", "chunks/ab/abc"):
        store.put(bucket, k, b"")
    assert list(store.list_prefixes(bucket, "groups/")) == ["groups/a/", "groups/b/", "groups/c/"]
    assert list(store.list_prefixes(bucket, "groups/a/")) == ["groups/a/bases/"]
    assert list(store.list_prefixes(bucket, "")) == ["chunks/", "groups/"]
