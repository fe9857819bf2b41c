"""A real ext4 filesystem written through the tap; every point restores to the byte.

nbdfuse + losetup + mkfs.ext4 + mount on the agent's NBD export; files are
created, overwritten and deleted; at several moments the filesystem is frozen,
a bookmark is taken and the backing disk is hashed as the reference. Recovery
at each bookmark and at each recorded timestamp must give the same SHA-256,
and the recovered image must pass e2fsck.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import time

import pytest

from deploy.local.pipeline import is_root, sha256_file
from deploy.local.nbdfs import freeze, nbd_filesystem, thaw, tools_missing

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.root]

DISK = 96 << 20


def _mutate(mnt, rng: random.Random, step: int) -> None:
    d = mnt / f"dir{step % 3}"
    d.mkdir(exist_ok=True)
    for i in range(rng.randint(3, 8)):
        (d / f"file{step}-{i}.bin").write_bytes(rng.randbytes(rng.randint(1, 3 << 20)))
    existing = sorted(p for p in mnt.rglob("*.bin"))
    for p in rng.sample(existing, k=min(3, len(existing))):
        with open(p, "r+b") as f:  # overwrite in place
            f.seek(rng.randint(0, max(0, p.stat().st_size - 1)))
            f.write(rng.randbytes(rng.randint(1, 200_000)))
    for p in rng.sample(existing, k=min(2, len(existing))):
        if p.exists() and rng.random() < 0.5:
            p.unlink()
    (mnt / "log.txt").open("a").write(f"step {step} at {time.time_ns()}\n" * 100)
    os.sync()


def test_filesystem_bookmarks_and_timestamps_restore_byte_exact(pipeline, tmp_path):
    if not is_root() or tools_missing():
        pytest.fail(f"needs root and {tools_missing()}") if os.environ.get("CI") else pytest.skip("needs root")
    pipeline.start()
    disk = tmp_path / "disk0.img"
    with open(disk, "wb") as f:
        f.truncate(DISK)
    mount = tmp_path / "fs"  # the agent freezes it around its quiesced bookmarks (its setting, not a request's)
    agent = pipeline.start_agent("fsgroup", {"disk0": disk}, extra={"DIALBACK_AGENT_BOOKMARK_FSFREEZE": str(mount)})
    agent.wait_shipped()

    rng = random.Random(1234)
    refs = []  # (bookmark name, bookmark seq, timestamp_ns, sha256)
    with nbd_filesystem(agent.nbd_socket, "disk0", mnt=mount) as mnt:
        for step in range(3):
            _mutate(mnt, rng, step)
            freeze(mnt)
            try:
                bm = agent.bookmark(f"step-{step}", quiesce=False)  # frozen by the test itself
                ts = time.time_ns()
                digest = sha256_file(disk)
                refs.append((bm["name"], bm["sequence"], ts, digest))
            finally:
                thaw(mnt)
            time.sleep(0.05)
        # one application-consistent bookmark taken by the agent's own fsfreeze
        _mutate(mnt, rng, 3)
        agent.bookmark("agent-frozen")
        _mutate(mnt, rng, 4)
    final_digest = sha256_file(disk)
    last = agent.wait_shipped()
    pipeline.wait_recoverable("fsgroup", last)

    for name, seq, ts, digest in refs:
        for at in ({"bookmark": name}, {"timestamp_ns": ts}):
            out = tmp_path / "recovered.img"
            r = pipeline.download("fsgroup", "disk0", out, **at)
            assert r.status_code == 200, r.text
            assert sha256_file(out) == digest, f"point {at} differs from the reference taken at that moment"
            assert int(r.headers["X-Dialback-Sequence"]) == seq
        fsck = subprocess.run(["e2fsck", "-fn", str(out)], capture_output=True, text=True)
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr

    out = tmp_path / "frozen.img"
    assert pipeline.download("fsgroup", "disk0", out, bookmark="agent-frozen").status_code == 200
    fsck = subprocess.run(["e2fsck", "-fn", str(out)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr

    out = tmp_path / "latest.img"
    assert pipeline.download("fsgroup", "disk0", out, sequence=last).status_code == 200
    assert sha256_file(out) == final_digest
    shutil.rmtree(tmp_path / "home" / "recovery", ignore_errors=True)
