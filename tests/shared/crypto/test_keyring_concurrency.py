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

from shared.crypto.keyring import Keyring, ensure_master_key, load_master_key, transport_entry
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
