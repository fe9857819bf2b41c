"""Random writes, zeroes and trims over NBD (libnbd) against a reference model;
recovery at random sequences is byte-exact."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from deploy.local.pipeline import sha256_file

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SIZE = 8 << 20
OPS = 400
SYSTEM_PYTHON = "/usr/bin/python3"


def _libnbd_available() -> bool:
    return shutil.which(SYSTEM_PYTHON) is not None and subprocess.run(
        [SYSTEM_PYTHON, "-c", "import nbd"], capture_output=True).returncode == 0


def test_random_ops_recover_byte_exact_at_random_sequences(pipeline, tmp_path):
    assert _libnbd_available(), "python3-libnbd (Debian) is needed: make setup installs it"
    pipeline.start()
    disk = tmp_path / "rand.img"
    disk.write_bytes(random.Random(7).randbytes(SIZE))  # non-empty disk: initial sync must carry it
    model = bytearray(disk.read_bytes())
    agent = pipeline.start_agent("randgroup", {"rand": disk})
    agent.wait_shipped()
    start = agent.bookmark("rand-start")

    seed = "dialback-random-1"
    proc = subprocess.run([SYSTEM_PYTHON, str(Path(__file__).with_name("nbd_random_ops.py")), str(agent.nbd_socket),
                           "rand", str(SIZE), seed, str(OPS)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    ops = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(ops) == OPS
    end = agent.bookmark("rand-end")
    # one record per operation: the i-th op is sequence start+1+i
    assert end["sequence"] == start["sequence"] + OPS + 1

    rng = random.Random(99)
    chosen = set(rng.sample(range(OPS), 8)) | {0, OPS - 1}
    expected: dict[int, str] = {start["sequence"]: hashlib.sha256(model).hexdigest()}
    for op in ops:
        off, n = op["offset"], op["length"]
        if op["kind"] == "write":
            model[off:off + n] = random.Random(f"{seed}-{op['i']}").randbytes(n)
        else:  # zeroes and trims both read back as zeroes
            model[off:off + n] = bytes(n)
        if op["i"] in chosen:
            expected[start["sequence"] + 1 + op["i"]] = hashlib.sha256(model).hexdigest()
    assert sha256_file(disk) == hashlib.sha256(model).hexdigest(), "the tap's backing disk diverged from the model"

    pipeline.wait_recoverable("randgroup", agent.wait_shipped())
    for seq, digest in sorted(expected.items()):
        out = tmp_path / f"seq{seq}.img"
        r = pipeline.download("randgroup", "rand", out, sequence=seq)
        assert r.status_code == 200, r.text
        assert sha256_file(out) == digest, f"recovery at sequence {seq} is not the model's state"
        out.unlink()
