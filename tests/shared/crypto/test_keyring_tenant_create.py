"""`tenant create` racing retention's first writes on one keyring: every key either side got survives.

Half the worker processes create tenants (create_tenant_with_credentials, as
`dialback tenant create` does); the other half seal objects for those same
tenants' buckets at the same moment, as retention's first write does. After a
"restart" (a fresh Keyring from disk) each credentials file's transport key is
the keyring's, and every sealed object opens.
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
from pathlib import Path

from shared.credentials import read_credentials
from shared.crypto.keyring import Keyring, ensure_master_key, load_master_key, tenant_entries, transport_entry
from shared.objectstore.encrypted import EncryptedObjectStore
from shared.objectstore.memory import MemoryObjectStore
from shared.tenancy import tenant_bucket

PAIRS = 6
ROUNDS = 2


def _tenant(pair: int, rnd: int) -> str:
    return f"t{pair}-r{rnd}"


def _worker(w: int, home: str, barrier, out) -> None:
    from services.ingest.provision import create_tenant_with_credentials

    home_p = Path(home)
    done, crashes = [], []
    for rnd in range(ROUNDS):
        try:
            barrier.wait(timeout=60)
            ring = Keyring(load_master_key(home_p / "master.key"), home_p / "keyring.json")
            tenant = _tenant(w // 2, rnd)
            if w % 2 == 0:
                create_tenant_with_credentials(home_p / "tenants.json", tenant, home_p / f"{tenant}.json", ring)
            else:
                inner = MemoryObjectStore()
                store, bucket = EncryptedObjectStore(inner, ring), tenant_bucket(tenant)
                store.ensure_bucket(bucket)
                store.put(bucket, "groups/g/manifest.json", f"manifest of {tenant}".encode())
                done.append((bucket, inner.get(bucket, "groups/g/manifest.json"), f"manifest of {tenant}".encode()))
        except BaseException:
            crashes.append(traceback.format_exc())
    out.put((done, crashes))


def test_tenant_create_racing_first_writes_loses_no_key(tmp_path: Path):
    master = ensure_master_key(tmp_path)
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(2 * PAIRS), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(w, str(tmp_path), barrier, out)) for w in range(2 * PAIRS)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    crashes = [c for _, cs in results for c in cs]
    assert not crashes, "\n".join(crashes)

    restarted = Keyring(load_master_key(master), tmp_path / "keyring.json")
    for pair in range(PAIRS):
        for rnd in range(ROUNDS):
            tenant = _tenant(pair, rnd)
            assert restarted.find(transport_entry(tenant)) == read_credentials(tmp_path / f"{tenant}.json").transport_key
            assert restarted.find(tenant_bucket(tenant)) is not None
    for done, _ in results:
        for bucket, raw, data in done:
            inner = MemoryObjectStore()
            inner.ensure_bucket(bucket)
            inner.put(bucket, "groups/g/manifest.json", raw)
            assert EncryptedObjectStore(inner, restarted).get(bucket, "groups/g/manifest.json") == data
    assert restarted.verify() == len(tenant_entries("acme")) * PAIRS * ROUNDS
