"""`rotate-data` racing writers in other processes on one keyring.json: no key is lost, no generation id reused.

Writer processes seal objects for one bucket (as retention does) while rotator
processes add generations (as `dialback keys rotate-data` does). After a
"restart" (a fresh Keyring from disk) every sealed object opens, the
generations are 1..N without gaps or duplicates, and each object names one of them.
"""

from __future__ import annotations

import multiprocessing as mp
import time
import traceback
from pathlib import Path

from shared.crypto.data_keys import DataKeys
from shared.crypto.keyring import Keyring, ensure_master_key, load_master_key
from shared.objectstore.encrypted import EncryptedObjectStore
from shared.objectstore.memory import MemoryObjectStore

B = "dialback-acme"
WRITERS, ROTATORS, OBJECTS, ROTATIONS = 4, 2, 40, 3


def _ring(home: Path) -> Keyring:
    return Keyring(load_master_key(home / "master.key"), home / "keyring.json")


def _worker(w: int, home: str, barrier, rotated, out) -> None:
    sealed, crashes = [], []
    try:
        ring = _ring(Path(home))
        barrier.wait(timeout=60)
        if w < ROTATORS:
            for _ in range(ROTATIONS):
                DataKeys(ring).rotate(B)
            rotated.release()
        else:
            inner = MemoryObjectStore()
            store = EncryptedObjectStore(inner, ring)
            store.ensure_bucket(B)
            i, until = 0, time.monotonic() + 30
            while i < OBJECTS or (rotated.get_value() < ROTATORS and time.monotonic() < until):  # while they rotate
                i += 1
                key, plain = f"w{w}/{i:04d}", f"object {i} of writer {w}".encode()
                store.put(B, key, plain)
                sealed.append((key, inner.get(B, key), plain))
    except BaseException:
        crashes.append(traceback.format_exc())
    out.put((sealed, crashes))


def test_rotations_racing_writers_lose_nothing(tmp_path: Path):
    ensure_master_key(tmp_path)
    _ring(tmp_path).ensure(B)  # generation 1, as `dialback tenant create` makes it
    ctx = mp.get_context("spawn")
    n = WRITERS + ROTATORS
    barrier, rotated, out = ctx.Barrier(n), ctx.Semaphore(0), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(w, str(tmp_path), barrier, rotated, out)) for w in range(n)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert not [c for _, crashes in results for c in crashes]
    restarted = EncryptedObjectStore(MemoryObjectStore(), _ring(tmp_path))
    gens = [g.id for g in restarted.data_keys.generations(B)]
    assert gens == list(range(1, 2 + ROTATORS * ROTATIONS))
    sealed = [s for objs, _ in results for s in objs]
    assert len(sealed) >= WRITERS * OBJECTS
    restarted.inner.ensure_bucket(B)
    used = set()
    for key, raw, plain in sealed:
        restarted.inner.put(B, key, raw)
        assert restarted.get(B, key) == plain
        used.add(restarted.header(B, key).key_id)
    assert used <= set(gens) and len(used) > 1, used  # the writers did write across rotations
