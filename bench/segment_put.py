"""CPU per MB of a journal segment PUT, client and MinIO, by how the PUT is checked.

    .venv/bin/python -m bench.segment_put [--mib 8] [--objects 48]

Starts a private MinIO (free port, temp dir) once in strict S3 mode and once with
``--no-compat`` (deploy/local/minio.py), and PUTs --objects random segments of --mib
MiB each way:
- ``signed``: what minio-py does over plain HTTP, SHA-256 of the body for SigV4,
  verified again by the server;
- ``crc32c``: the adapter's PUT (shared/objectstore/minio.py), ``UNSIGNED-PAYLOAD``
  with an ``x-amz-checksum-crc32c`` the server verifies.
Strict mode also has the server MD5 every body for the ETag. Prints JSON: MB/s and
ms of CPU per MB for the client (this process) and the server. Bounded by --objects.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from bench.cpu import CpuMeter
from deploy.local import minio
from deploy.local.process import free_port
from shared.config import default_cache
from shared.objectstore.minio import MinioObjectStore


def _signed_put(store: MinioObjectStore, bucket: str, key: str, data: bytes) -> None:
    # minio-py's own PUT: no checksum header, so the adapter's client signs the payload
    store._c.put_object(bucket, key, io.BytesIO(data), len(data), part_size=64 << 20)


def _measure(store: MinioObjectStore, server_pid: int, put, payloads: list[bytes], objects: int) -> dict:
    bucket = f"bench-{secrets.token_hex(4)}"
    store.ensure_bucket(bucket)
    meter = CpuMeter({"client": os.getpid(), "minio": server_pid})
    t0 = time.monotonic()
    for i in range(objects):
        put(store, bucket, f"seg/{i:06d}", payloads[i % len(payloads)])
    wall = time.monotonic() - t0
    mb = objects * len(payloads[0]) / 1e6
    cpu = meter.stop(wall, mb)
    return {"MBps": round(mb / wall, 1), "ms_per_MB": cpu["ms_per_MB"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=8, help="segment size")
    ap.add_argument("--objects", type=int, default=48, help="PUTs per mode (bounded to 512)")
    args = ap.parse_args()
    objects = min(args.objects, 512)
    payloads = [os.urandom(args.mib << 20) for _ in range(4)]
    results: dict[str, dict] = {}
    for strict in (True, False):
        tmp = Path(tempfile.mkdtemp(prefix="dialback-bench-put-"))
        port, access, secret = free_port(), "bench-" + secrets.token_hex(4), secrets.token_urlsafe(18)
        server = minio.server(default_cache(), tmp, port, free_port(), access, secret, strict=strict)
        try:
            server.start(timeout=60)
            store = MinioObjectStore(f"127.0.0.1:{port}", access, secret)
            mode = "strict" if strict else "no_compat"
            for name, put in (("signed", _signed_put), ("crc32c", MinioObjectStore.put)):
                _measure(store, server.pid(), put, payloads, 4)  # warm-up: connections, first pages
                results[f"{mode}_{name}"] = _measure(store, server.pid(), put, payloads, objects)
        finally:
            server.stop()
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"bench": "segment_put", "segment_MiB": args.mib, "objects": objects,
                      "results": results}, indent=2))


if __name__ == "__main__":
    main()
