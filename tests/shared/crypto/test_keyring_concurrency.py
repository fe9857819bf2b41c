"""Many processes creating keyring entries at once: no key a caller received is lost.

Each worker process opens its own Keyring on one keyring.json (as retention,
ingest and `dialback tenant create` do), waits on a barrier and creates keys
for entries shared by every worker and for entries of its own. It seals a
marker under every key it got back. Afterwards a fresh Keyring loaded from
disk (a "restart") must hold every one of those keys and open every sealed
object; no worker may crash.
"""

from __future__ import annotations

import multiprocessing as mp
import secrets
import traceback
from pathlib import Path

import pytest

from shared.crypto.keyring import Keyring, KeyringError, ensure_master_key, load_master_key, transport_entry
from shared.objectstore.encrypted import EncryptedObjectStore
from shared.objectstore.memory import MemoryObjectStore

WORKERS = 16
ROUNDS = 4


def _entries(worker: int, rnd: int) -> list[str]:
    # shared entries (every worker asks for the same key) and per-worker ones
    # (different tenants created at once), interleaved in a worker-specific order.
    shared = [f"dialback-shared-r{rnd}-{i}" for i in range(2)]
    own = [f"dialback-w{worker}-r{rnd}", transport_entry(f"w{worker}-r{rnd}")]
    return own + shared if worker % 2 else shared + own


def _worker(worker: int, master: str, ring_path: str, barrier, out) -> None:
    # a failed call is recorded and the worker goes on, so one run shows both
    # crashes and keys that were handed out but not kept.
    sealed, crashes = [], []
    for rnd in range(ROUNDS):
        try:
            barrier.wait(timeout=60)
            ring = Keyring(load_master_key(master), ring_path)  # a fresh process view each round
        except BaseException:
            crashes.append(traceback.format_exc())
            continue
        inner = MemoryObjectStore()
        store = EncryptedObjectStore(inner, ring)
        for name in _entries(worker, rnd):
            try:
                store.ensure_bucket(name)
                data = f"sealed by worker {worker} round {rnd} under {name}".encode()
                store.put(name, "obj", data)
                sealed.append((name, ring.data_key(name), inner.get(name, "obj"), data))
            except BaseException:
                crashes.append(traceback.format_exc())
    out.put((worker, sealed, crashes))


def test_concurrent_key_creation_loses_no_key(tmp_path: Path):
    master = ensure_master_key(tmp_path)
    ring_path = tmp_path / "keyring.json"
    ctx = mp.get_context("spawn")  # no fork of a threaded pytest process
    barrier, out = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(w, str(master), str(ring_path), barrier, out))
             for w in range(WORKERS)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    crashes = [c for r in results for c in r[2]]

    restarted = Keyring(load_master_key(master), ring_path)
    lost, unreadable = [], []
    for worker, sealed, _ in results:
        for name, key, raw, data in sealed:
            stored = restarted.find(name)
            if stored != key:
                lost.append((worker, name))
                continue
            inner = MemoryObjectStore()
            inner.ensure_bucket(name)
            inner.put(name, "obj", raw)
            if EncryptedObjectStore(inner, restarted).get(name, "obj") != data:
                unreadable.append((worker, name))
    total = sum(len(r[1]) for r in results)
    assert not lost and not crashes, (
        f"{len(lost)} of {total} keys handed to callers are not in keyring.json: {lost[:3]}; "
        f"{len(crashes)} calls crashed:\n" + "\n".join(c.splitlines()[-1] for c in crashes))
    assert not unreadable
    assert restarted.verify() == ROUNDS * (2 + 2 * WORKERS)


def test_keyring_file_stays_private_and_leaves_no_temp_files(tmp_path: Path):
    master = ensure_master_key(tmp_path)
    ring_path = tmp_path / "keyring.json"
    ring = Keyring(load_master_key(master), ring_path)
    key = ring.data_key("dialback-acme")
    assert ring_path.stat().st_mode & 0o077 == 0
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("master.key", "keyring.json")
                 and not p.name.endswith(".lock")]
    assert leftovers == []
    assert Keyring(load_master_key(master), ring_path).find("dialback-acme") == key
    assert secrets.compare_digest(ring.data_key("dialback-acme"), key)


def test_a_key_not_confirmed_on_disk_is_never_handed_out(tmp_path: Path, monkeypatch):
    import shared.crypto.keyring as keyring_mod

    master = ensure_master_key(tmp_path)
    ring_path = tmp_path / "keyring.json"
    ring = Keyring(load_master_key(master), ring_path)
    ring.data_key("dialback-first")
    monkeypatch.setattr(keyring_mod, "replace_durably", lambda path, wrapped: None)  # a write that got lost
    with pytest.raises(KeyringError, match="not in keyring file"):
        ring.data_key("dialback-acme")
    with pytest.raises(KeyringError):  # not cached either: the next call tries (and checks) again
        ring.data_key("dialback-acme")
    monkeypatch.undo()
    key = ring.data_key("dialback-acme")
    assert Keyring(load_master_key(master), ring_path).find("dialback-acme") == key


def test_rotation_keeps_entries_added_by_other_processes_after_load(tmp_path: Path):
    master = ensure_master_key(tmp_path)
    ring_path = tmp_path / "keyring.json"
    rotator = Keyring(load_master_key(master), ring_path)
    rotator.data_key("dialback-a")
    other = Keyring(load_master_key(master), ring_path)  # e.g. `dialback tenant create` meanwhile
    added = other.data_key("dialback-b")
    new = secrets.token_bytes(32)
    assert rotator.rotate_master(new) == 2
    assert Keyring(new, ring_path).find("dialback-b") == added


def test_a_process_with_the_old_master_refuses_to_add_after_rotation(tmp_path: Path):
    master = ensure_master_key(tmp_path)
    ring_path = tmp_path / "keyring.json"
    stale = Keyring(load_master_key(master), ring_path)
    stale.data_key("dialback-a")
    new = secrets.token_bytes(32)
    Keyring(load_master_key(master), ring_path).rotate_master(new)
    with pytest.raises(KeyringError, match="another master key"):
        stale.data_key("dialback-b")  # would wrap it under a key nobody holds after a restart
    assert Keyring(new, ring_path).verify() == 1


def test_a_damaged_keyring_file_is_a_clear_error(tmp_path: Path):
    master = ensure_master_key(tmp_path)
    ring_path = tmp_path / "keyring.json"
    ring_path.write_text('{"version": 1, "wrapped": {}}xx')
    with pytest.raises(KeyringError, match="restore it from a backup"):
        Keyring(load_master_key(master), ring_path)
