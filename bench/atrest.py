"""Cost of the at-rest layer on the in-memory store: DBE2 (written now) vs DBE1 (legacy) objects.

    .venv/bin/python -m bench.atrest [--seconds 2] [--start-minio]

Measures small random range reads (what instant access and recovery's chunk
reads do: one header read, the covering chunks, one subkey derivation per
call for DBE2), whole-object reads and puts of an 8 MiB segment. Prints JSON.
Bounded: each measurement runs for --seconds, DBE1 and DBE2 calls interleaved (the
shared machine's load moves); medians in µs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import statistics
import tempfile
import time

from bench.common import close_store, open_store
from shared.crypto.keyring import Keyring
from shared.objectstore.encrypted import EncryptedObjectStore
from shared.objectstore.memory import MemoryObjectStore
from tests.shared.crypto.legacy_dbe1 import seal_dbe1

BUCKET, SIZE = "dialback-bench", 8 << 20


def _medians(calls: dict[str, object], seconds: float) -> dict[str, float]:
    """Median µs per call of each function, calls interleaved (the order flips each round) for ``seconds``."""
    times: dict[str, list[float]] = {n: [] for n in calls}
    names, start = list(calls), time.perf_counter()
    while time.perf_counter() - start < seconds or len(times[names[0]]) < 5:
        for name in names:
            t = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - t)
        names.reverse()
    return {n: round(statistics.median(v) * 1e6, 1) for n, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--start-minio", action="store_true", help="a throwaway MinIO (tests/servers.py), not memory")
    args = ap.parse_args()
    server, inner = (open_store(True)[:2]) if args.start_minio else (None, MemoryObjectStore())
    try:
        _run(inner, args.seconds, "minio" if server else "memory")
    finally:
        if server is not None:
            close_store(inner, BUCKET, server)


def _run(inner, seconds: float, where: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = EncryptedObjectStore(inner, Keyring(secrets.token_bytes(32), os.path.join(tmp, "keyring.json")))
        store.ensure_bucket(BUCKET)
        data = os.urandom(SIZE)
        store.put(BUCKET, "v2", data)
        inner.put(BUCKET, "v1", seal_dbe1(data, store.keyring.data_key(BUCKET), BUCKET, "v1"))
        assert store.get(BUCKET, "v1") == store.get(BUCKET, "v2") == data
        rng = random.Random(1)

        def ranged(name: str):
            return lambda: store.get_range(BUCKET, name, rng.randrange(SIZE - 4096), 4096)

        out = {"bench": "atrest", "store": where, "python": platform.python_version(), "object_bytes": SIZE,
               "range_4k_us": _medians({"dbe1": ranged("v1"), "dbe2": ranged("v2")}, seconds),
               "get_us": _medians({"dbe1": lambda: store.get(BUCKET, "v1"), "dbe2": lambda: store.get(BUCKET, "v2")},
                                  seconds),
               "put_dbe2_us": _medians({"dbe2": lambda: store.put(BUCKET, "p", data)}, seconds)["dbe2"]}
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
