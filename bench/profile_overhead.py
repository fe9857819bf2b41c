"""Cost of ProfileRecorder.on_write per call (what profile-only mode adds to each NBD write).

    .venv/bin/python bench/profile_overhead.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.profile.recorder import ProfileRecorder  # noqa: E402


def main() -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as d:
        rec = ProfileRecorder(os.path.join(d, "p.dbprof"), "bench").start()
        for size, n in ((4096, 200_000), (65536, 50_000), (1 << 20, 5_000)):
            data = os.urandom(size)
            t = time.perf_counter()
            for i in range(n):
                rec.on_write((i * 7919 % 100_000) * 4096, size, data)
            dt = time.perf_counter() - t
            out[f"{size}B_us_per_write"] = round(dt / n * 1e6, 2)
        rec.close()
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
