"""Cost of agent→ingest payload encryption (AES-256-GCM seal/open of 1 MiB batches),
and ingest's in-process accept rate for plaintext vs sealed batches on the in-memory bus.

    .venv/bin/python bench/transport.py [--seconds 2] [--batches 200]

Prints JSON. Bounded: each rate runs for --seconds, each ingest run posts --batches batches.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from shared.crypto.transport import SEALED_CONTENT_TYPE, new_key, open_sealed, seal
from shared.frames import MAX_BATCH_BYTES, data_record, encode_batch

SIZE = 64 << 10


def _batch(first: int) -> bytes:
    n = (MAX_BATCH_BYTES - 64) // (SIZE + 64)
    return encode_batch([data_record("disk0", first + i, first + i, i * SIZE, os.urandom(SIZE)) for i in range(n)])


def _rate(fn, nbytes: int, seconds: float) -> float:
    fn()
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        done += nbytes
    return done / elapsed / 1e6


def crypto_rates(seconds: float) -> dict:
    key, batch = new_key(), _batch(1)
    body = seal(key, "acme", "g1", 1, 15, batch)
    return {"batch_bytes": len(batch),
            "seal_MBps": round(_rate(lambda: seal(key, "acme", "g1", 1, 15, batch), len(batch), seconds), 1),
            "open_MBps": round(_rate(lambda: open_sealed(key, "acme", "g1", body), len(batch), seconds), 1)}


def ingest_rate(sealed: bool, batches: int) -> dict:
    from fastapi.testclient import TestClient

    from services.ingest.app import create_app
    from services.ingest.bus.memory import MemoryBroker, MemoryControlLog, MemoryWritesLog
    from services.ingest.config import IngestSettings
    from services.ingest.transport import TransportKeys
    from shared.auth import TenantAuth, create_tenant
    from shared.crypto.keyring import Keyring, transport_entry

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "tenants.json"
        token = create_tenant(path, "acme")
        ring = Keyring(new_key(), Path(d) / "keyring.json")
        key = ring.data_key(transport_entry("acme")) if sealed else None
        broker = MemoryBroker()
        app = create_app(IngestSettings(tenants_file=path), writes=MemoryWritesLog(broker),
                         control=MemoryControlLog(broker), auth=TenantAuth(path), keys=TransportKeys(ring))
        hdr = {"Authorization": f"Bearer {token}"}
        plain = [_batch(1 + i * 15) for i in range(batches)]
        bodies = [seal(key, "acme", "g1", 1 + i * 15, 15 + i * 15, b) if sealed else b for i, b in enumerate(plain)]
        ctype = SEALED_CONTENT_TYPE if sealed else "application/x-dialback-batch"
        with TestClient(app) as c:
            c.put("/v1/groups/g1", headers=hdr, json={"volumes": [{"volume": "disk0", "size": 1 << 30}]})
            start = time.perf_counter()
            for b in bodies:
                r = c.post("/v1/groups/g1/batches", content=b, headers={**hdr, "Content-Type": ctype})
                assert r.status_code == 200, r.text
            elapsed = time.perf_counter() - start
        nbytes = sum(len(b) for b in plain)
        return {"sealed": sealed, "batches": batches, "MBps": round(nbytes / elapsed / 1e6, 1),
                "batches_per_s": round(batches / elapsed, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--batches", type=int, default=200)
    a = ap.parse_args()
    print(json.dumps({"machine": platform.machine(), "cpus": os.cpu_count(), "crypto": crypto_rates(a.seconds),
                      "ingest_in_process": [ingest_rate(False, a.batches), ingest_rate(True, a.batches)]}, indent=2))


if __name__ == "__main__":
    main()
