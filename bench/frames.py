"""Frame codec v1 throughput: encode and decode MB/s for 4 KiB and 64 KiB writes.

    .venv/bin/python bench/frames.py [--seconds 2]

Prints JSON. Target: decode >= 1 GB/s for 64 KiB writes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import crc32c

from shared.frames import MAX_BATCH_BYTES, data_record, decode_batch, encode_batch


def _rate(fn, nbytes: int, seconds: float) -> float:
    fn()  # warm up
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        done += nbytes
    return done / elapsed / 1e6


def bench(size: int, seconds: float) -> dict:
    per_batch = (MAX_BATCH_BYTES - 64) // (size + 64)
    # Half-compressible payloads, like real disk blocks; encoded raw here (codec cost only).
    recs = [data_record("disk0", i + 1, i, i * size, os.urandom(size // 2) + bytes(size // 2))
            for i in range(per_batch)]
    buf = encode_batch(recs)
    payload = per_batch * size
    return {
        "write_size": size,
        "records_per_batch": per_batch,
        "batch_bytes": len(buf),
        "encode_MBps": round(_rate(lambda: encode_batch(recs), payload, seconds), 1),
        "decode_MBps": round(_rate(lambda: decode_batch(buf), payload, seconds), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    results = [bench(s, args.seconds) for s in (4096, 65536)]
    print(json.dumps({"bench": "frames", "crc32c_hardware": bool(crc32c.hardware_based),
                      "python": platform.python_version(), "results": results,
                      "target": {"decode_MBps_64KiB": 1000}}, indent=2))


if __name__ == "__main__":
    main()
