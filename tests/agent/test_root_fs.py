"""A real filesystem on the tap: nbdfuse + loop + ext4, then prove capture is complete.

Needs root (FUSE, losetup, mount). The backing file's digest must equal the
image rebuilt from nothing but the spooled records, applied in sequence order
to a zero image.
"""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

from agent.nbd.loopchain import loop_device, mounted
from agent.replay import apply_records
from agent.runtime import AgentThread
from shared.frames import Kind
from tests.agent.conftest import agent_settings, control_client, make_image
from tests.agent.test_group import all_records

pytestmark = pytest.mark.root
MiB = 1 << 20


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(MiB), b""):
            h.update(block)
    return h.hexdigest()


def test_ext4_on_the_tap_is_fully_captured(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("this test needs root (nbdfuse, losetup, mount); run the suite as root")
    img = make_image(tmp_path / "disk0.img", 64 * MiB)
    # ingest unreachable on purpose: every record stays in the spool
    h = AgentThread(agent_settings(tmp_path, "http://127.0.0.1:9", {"disk0": img},
                                   bookmark_fsfreeze=str(tmp_path / "mnt"))).start()
    files = {}
    try:
        g = h.group
        g.state.initial_sync_complete = True  # bookmarks need it; this test proves capture, not sync
        with loop_device(h.agent.nbd_socket, None, "disk0", tmp_path) as dev:
            subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "nodiscard", dev], check=True, timeout=60)
            with mounted(dev, tmp_path / "mnt") as mnt:
                for i in range(12):
                    data = os.urandom(37_000 * (i + 1))
                    (mnt / f"file{i}").write_bytes(data)
                    files[f"file{i}"] = hashlib.sha256(data).hexdigest()
                (mnt / "dir").mkdir()
                (mnt / "dir" / "big").write_bytes(b"\x5a" * (3 * MiB))
                os.sync()
                (mnt / "file3").unlink()
                subprocess.run(["fstrim", str(mnt)], check=True, timeout=60)
                with control_client(h) as ctl:  # freezes the configured mount point
                    r = ctl.post("/v1/bookmarks", json={"group": "grp1", "name": "frozen-1"})
                assert r.status_code == 200, r.text
                (mnt / "after-thaw").write_bytes(b"the filesystem is writable again")
        recs = all_records(g)
        assert [r.sequence for r in recs] == list(range(1, len(recs) + 1))
        kinds = {r.kind for r in recs}
        assert Kind.TRIM in kinds and Kind.BOOKMARK in kinds and Kind.DATA in kinds
    finally:
        h.stop()
    out = make_image(tmp_path / "rebuilt.img", 64 * MiB)
    apply_records(recs, {"disk0": out})
    assert sha256(out) == sha256(img)
    # and the rebuilt image is a working filesystem with the same files
    check = subprocess.run(["e2fsck", "-fn", str(out)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    listing = subprocess.run(["debugfs", "-R", "ls -l /", str(out)], capture_output=True, text=True, timeout=60)
    assert "file0" in listing.stdout and "file3" not in listing.stdout and "after-thaw" in listing.stdout
    for name in ("file5", "file11"):
        dumped = subprocess.run(["debugfs", "-R", f"cat /{name}", str(out)], capture_output=True, timeout=60)
        assert hashlib.sha256(dumped.stdout).hexdigest() == files[name]


def test_block_device_backing(tmp_path):
    """A real block device (loop over a file) as the protected volume."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root (losetup); run the suite as root")
    from agent.nbd.client import connect
    backing = make_image(tmp_path / "blk.img", 8 * MiB)
    dev = subprocess.run(["losetup", "--find", "--show", str(backing)], capture_output=True, text=True,
                         check=True).stdout.strip()
    try:
        h = AgentThread(agent_settings(tmp_path, "http://127.0.0.1:9", {"blk": dev})).start()
        try:
            with connect(h.agent.nbd_socket, None, "blk") as c:
                assert c.size == 8 * MiB
                c.pwrite(b"\x77" * 65536, 4096)
                c.trim(8192, 8192)  # BLKZEROOUT (or zero writes) on a device
                c.zero(4096, 65536, fua=True)
                assert c.pread(8192, 8192) == bytes(8192)
            recs = all_records(h.group)
        finally:
            h.stop()
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)
    out = make_image(tmp_path / "rebuilt.img", 8 * MiB)
    apply_records(recs, {"blk": out})
    assert sha256(out) == sha256(backing)
