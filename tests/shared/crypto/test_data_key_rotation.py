"""Data key generations (`dialback keys rotate-data`) and the re-key job (`dialback keys rekey`)."""

from __future__ import annotations

import secrets
import threading

import pytest

from shared.crypto.data_keys import DataKeys
from shared.crypto.keyring import Keyring, ensure_master_key, load_master_key
from shared.objectstore.encrypted import CHUNK, EncryptedObjectStore, IntegrityError
from shared.objectstore.memory import MemoryObjectStore
from shared.objectstore.rekey import RekeyError, rekey_bucket, retire_old_generations, scan_formats
from tests.shared.crypto.legacy_dbe1 import seal_dbe1

B = "dialback-acme"


def _ring(tmp_path) -> Keyring:
    return Keyring(load_master_key(ensure_master_key(tmp_path)), tmp_path / "keyring.json")


def _populate(inner, store) -> dict[str, bytes]:
    """DBE1 objects, DBE2 under generation 1, a rotation, DBE2 under generation 2; returns key -> plaintext."""
    want = {}
    key1 = store.keyring.data_key(B)
    for i in range(3):
        k, data = f"groups/g/journal/{i:020d}-{i:020d}.seg", secrets.token_bytes(CHUNK + 1000 * i)
        inner.put(B, k, seal_dbe1(data, key1, B, k))  # written by the old Dialback
        want[k] = data
    for k in ("groups/g/manifest.json", "chunks/ab/ab12"):
        want[k] = secrets.token_bytes(500)
        store.put(B, k, want[k])
    store.data_keys.rotate(B)
    for k in ("groups/g/timeline/1.json", "recoveries/img"):
        want[k] = secrets.token_bytes(3 * CHUNK)
        store.put(B, k, want[k])
    return want


def test_rotate_write_both_readable_rekey_then_all_current_and_identical(tmp_path):
    inner = MemoryObjectStore()
    inner.ensure_bucket(B)
    store = EncryptedObjectStore(inner, _ring(tmp_path))
    want = _populate(inner, store)
    assert scan_formats(store, B) == {(1, 1): 3, (2, 1): 2, (2, 2): 2}
    assert {k: store.get(B, k) for k in want} == want
    stats = rekey_bucket(store, B)
    assert (stats.newest, stats.scanned, stats.rewritten, stats.current) == (2, 7, 5, 2)
    assert scan_formats(store, B) == {(2, 2): 7}
    assert {k: store.get(B, k) for k in want} == want  # byte-identical plaintext, same keys
    again = rekey_bucket(store, B)  # idempotent
    assert (again.rewritten, again.current) == (0, 7)


def test_rekey_resumes_after_a_key(tmp_path):
    inner = MemoryObjectStore()
    inner.ensure_bucket(B)
    store = EncryptedObjectStore(inner, _ring(tmp_path))
    want = _populate(inner, store)
    keys = sorted(want)
    # keys: chunks/ab/ab12, 3 journal segments, manifest (these 5 need re-keying), timeline, recoveries/img
    first = rekey_bucket(store, B, start_after=keys[3])  # a run stopped after the third segment
    assert (first.scanned, first.rewritten, first.last_key) == (3, 1, keys[-1])
    rest = rekey_bucket(store, B)
    assert (rest.rewritten, rest.current) == (4, 3)
    assert scan_formats(store, B) == {(2, 2): 7}


def test_a_running_store_seals_under_a_generation_another_process_added(tmp_path):
    inner = MemoryObjectStore()
    inner.ensure_bucket(B)
    service = EncryptedObjectStore(inner, _ring(tmp_path))
    service.put(B, "a", b"before")
    gen = DataKeys(_ring(tmp_path)).rotate(B)  # `dialback keys rotate-data` in another process
    assert gen.id == 2 and gen.created
    service.put(B, "b", b"after")
    assert [service.header(B, k).key_id for k in ("a", "b")] == [1, 2]
    fresh = EncryptedObjectStore(inner, _ring(tmp_path))  # after a restart both open
    assert (fresh.get(B, "a"), fresh.get(B, "b")) == (b"before", b"after")


def test_concurrent_rotations_add_distinct_consecutive_generations(tmp_path):
    _ring(tmp_path).data_key(B)
    rings = [DataKeys(_ring(tmp_path)) for _ in range(8)]
    got, barrier = [], threading.Barrier(len(rings))

    def rotate(dk: DataKeys) -> None:
        barrier.wait()
        got.append(dk.rotate(B).id)

    threads = [threading.Thread(target=rotate, args=(dk,)) for dk in rings]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(2, 10))
    assert [g.id for g in DataKeys(_ring(tmp_path)).generations(B)] == list(range(1, 10))


def test_retire_refuses_while_old_objects_remain_then_removes_old_keys(tmp_path):
    inner = MemoryObjectStore()
    inner.ensure_bucket(B)
    store = EncryptedObjectStore(inner, _ring(tmp_path))
    want = _populate(inner, store)
    with pytest.raises(RekeyError, match="DBE1 generation 1"):
        retire_old_generations(store, B)
    assert [g.id for g in store.data_keys.generations(B)] == [1, 2]
    rekey_bucket(store, B)
    assert retire_old_generations(store, B) == [1]
    restarted = EncryptedObjectStore(inner, _ring(tmp_path))
    assert [g.id for g in restarted.data_keys.generations(B)] == [2]
    assert restarted.keyring.find(B) is None  # the old key is gone from keyring.json
    assert {k: restarted.get(B, k) for k in want} == want
    restarted.put(B, "new", b"still generation 2")  # no generation 1 is created again
    assert restarted.header(B, "new").key_id == 2 and restarted.keyring.find(B) is None


class Racing(MemoryObjectStore):
    """Runs ``race`` once, right after the first whole-object read (the re-key job reading the old object)."""

    race = None
    after_put = None

    def put(self, bucket, key, data):
        super().put(bucket, key, data)
        hook, self.after_put = self.after_put, None
        if hook:
            hook()

    def get(self, bucket, key):
        body = super().get(bucket, key)
        race, self.race = self.race, None
        if race:
            race()
        return body

    def get_range(self, bucket, key, offset, length):
        return super().get(bucket, key)[offset: offset + length]


@pytest.mark.parametrize("what", ["rewritten", "deleted"])
def test_rekey_leaves_an_object_a_service_changed_meanwhile(tmp_path, what):
    inner = Racing()
    inner.ensure_bucket(B)
    store = EncryptedObjectStore(inner, _ring(tmp_path))
    store.put(B, "groups/g/manifest.json", b"v1")
    store.data_keys.rotate(B)
    service = EncryptedObjectStore(inner, _ring(tmp_path))  # retention, in another process
    inner.race = ((lambda: service.put(B, "groups/g/manifest.json", b"v2, written by retention")) if what == "rewritten"
                  else (lambda: service.delete(B, "groups/g/manifest.json")))
    stats = rekey_bucket(store, B)
    assert (stats.rewritten, stats.changed_meanwhile) == (0, 1)
    if what == "rewritten":
        assert store.get(B, "groups/g/manifest.json") == b"v2, written by retention"
    else:
        assert not store.exists(B, "groups/g/manifest.json")  # not resurrected


def test_rekey_keeps_a_write_that_lands_right_after_its_own(tmp_path):
    inner = Racing()
    inner.ensure_bucket(B)
    store = EncryptedObjectStore(inner, _ring(tmp_path))
    store.put(B, "groups/g/manifest.json", b"v1")
    store.data_keys.rotate(B)
    service = EncryptedObjectStore(inner, _ring(tmp_path))
    inner.after_put = lambda: service.put(B, "groups/g/manifest.json", b"v2, written by retention")
    stats = rekey_bucket(store, B)
    assert (stats.rewritten, stats.changed_meanwhile) == (0, 1)  # the job does not put v1 again over v2
    assert store.get(B, "groups/g/manifest.json") == b"v2, written by retention"


def test_rekey_reports_a_damaged_object_and_goes_on(tmp_path):
    inner = MemoryObjectStore()
    inner.ensure_bucket(B)
    store = EncryptedObjectStore(inner, _ring(tmp_path))
    for k in ("a", "b"):
        store.put(B, k, secrets.token_bytes(100))
    raw = bytearray(inner.get(B, "a"))
    raw[-1] ^= 1
    inner.put(B, "a", bytes(raw))
    store.data_keys.rotate(B)
    stats = rekey_bucket(store, B)
    assert [k for k, _ in stats.damaged] == ["a"] and stats.rewritten == 1
    with pytest.raises(IntegrityError):
        store.get(B, "a")
    with pytest.raises(RekeyError):
        retire_old_generations(store, B)


def test_master_rotation_rewraps_every_generation(tmp_path):
    from shared.crypto.rotate import rotate_master_file

    inner = MemoryObjectStore()
    inner.ensure_bucket(B)
    store = EncryptedObjectStore(inner, _ring(tmp_path))
    want = _populate(inner, store)
    assert rotate_master_file(tmp_path / "master.key", tmp_path / "keyring.json") == 2
    fresh = EncryptedObjectStore(inner, _ring(tmp_path))
    assert {k: fresh.get(B, k) for k in want} == want
    assert [g.id for g in fresh.data_keys.generations(B)] == [1, 2]


def test_a_generation_entry_renamed_does_not_unwrap(tmp_path):
    import json

    from shared.crypto.keyring import KeyringError

    ring = _ring(tmp_path)
    ring.data_key(B)
    gen = DataKeys(ring).rotate(B)
    doc = json.loads((tmp_path / "keyring.json").read_text())
    doc["wrapped"][gen.entry.replace(":2:", ":3:")] = doc["wrapped"][gen.entry]  # claims to be generation 3
    (tmp_path / "keyring.json").write_text(json.dumps(doc))
    forged = DataKeys(_ring(tmp_path))
    with pytest.raises(KeyringError, match="does not unwrap"):
        forged.current(B)


def test_rekey_leaves_leases_to_their_holders(tmp_path):
    from shared.leases import acquire

    inner = MemoryObjectStore()
    inner.ensure_bucket(B)
    store = EncryptedObjectStore(inner, _ring(tmp_path))
    lease = acquire(store, B, "g", base_seq=5, from_seq=7, ttl_s=600)
    store.data_keys.rotate(B)
    stats = rekey_bucket(store, B)
    assert (stats.rewritten, stats.leases_waiting) == (0, 1)
    assert store.header(B, lease.key).key_id == 1  # a re-key racing a renewal could put back an older expiry
    with pytest.raises(RekeyError, match="lease TTL"):
        retire_old_generations(store, B)
    lease.renew()  # the holder's next renewal seals it under the newest generation
    assert store.header(B, lease.key).key_id == 2
    assert retire_old_generations(store, B) == [1]
