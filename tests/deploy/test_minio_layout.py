"""The local MinIO's drives: two as an EC:0 erasure set (O_DIRECT writes) unless a layout exists or O_DIRECT fails."""

from __future__ import annotations

import os

import pytest

from deploy.local import minio_layout
from deploy.local.minio_layout import drives, odirect_supported, server_args


@pytest.fixture(autouse=True)
def _default_drives(monkeypatch):
    monkeypatch.delenv("DIALBACK_STACK_MINIO_DRIVES", raising=False)


def test_a_new_stack_gets_two_drives_with_parity_zero(tmp_path):
    paths = drives(tmp_path / "minio")
    assert paths == [tmp_path / "minio" / "drive1", tmp_path / "minio" / "drive2"]
    assert all(p.is_dir() for p in paths)
    args, env = server_args(paths)
    assert args == [str(tmp_path / "minio" / "drive{1...2}")]
    assert env["MINIO_STORAGE_CLASS_STANDARD"] == "EC:0"
    assert env["MINIO_ROOTDISK_THRESHOLD_SIZE"] == "1"


def test_an_existing_single_drive_stack_keeps_its_drive(tmp_path):
    (tmp_path / "data" / ".minio.sys").mkdir(parents=True)
    paths = drives(tmp_path)
    assert paths == [tmp_path / "data"]
    assert server_args(paths) == ([str(tmp_path / "data")], {})


def test_an_existing_two_drive_stack_is_kept_even_when_one_drive_is_asked(tmp_path, monkeypatch):
    for n in (1, 2):
        (tmp_path / f"drive{n}" / ".minio.sys").mkdir(parents=True)
    monkeypatch.setenv("DIALBACK_STACK_MINIO_DRIVES", "1")
    assert len(drives(tmp_path)) == 2


def test_one_drive_on_request(tmp_path, monkeypatch):
    monkeypatch.setenv("DIALBACK_STACK_MINIO_DRIVES", "1")
    assert drives(tmp_path) == [tmp_path / "data"]


def test_a_wrong_drive_count_is_refused_with_the_choices(monkeypatch):
    monkeypatch.setenv("DIALBACK_STACK_MINIO_DRIVES", "3")
    with pytest.raises(ValueError, match="must be 1 or 2"):
        minio_layout.wanted_drives()


def test_no_o_direct_means_one_drive(tmp_path, monkeypatch):
    monkeypatch.setattr(minio_layout, "odirect_supported", lambda d: False)
    assert drives(tmp_path) == [tmp_path / "data"]


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT on this platform")
def test_o_direct_probe_on_this_filesystem_leaves_nothing_behind(tmp_path):
    # ext4 (the test machine's /tmp) takes O_DIRECT; /dev/shm may or may not (tmpfs, kernel-dependent).
    assert odirect_supported(tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert not odirect_supported(tmp_path / "missing")


@pytest.mark.integration
def test_the_test_minio_spreads_each_object_over_both_drives(minio_server, minio_store):
    if minio_server.tmp is None:
        pytest.skip("an external MinIO (DIALBACK_TEST_S3_ENDPOINT): its layout is not ours")
    paths = drives(minio_server.tmp)
    if len(paths) == 1:  # a fresh test MinIO has one drive only where the filesystem refuses O_DIRECT
        assert not odirect_supported(minio_server.tmp)
        return
    data = os.urandom(4 << 20) + b"tail"
    minio_store.ensure_bucket("layout-check")
    minio_store.put("layout-check", "obj", data)
    assert minio_store.get("layout-check", "obj") == data
    shards = [sum(f.stat().st_size for f in (p / "layout-check" / "obj").rglob("part.*")) for p in paths]
    assert all(s > 0 for s in shards) and sum(shards) >= len(data)  # one half on each drive, no parity
    assert sum(shards) < 1.1 * len(data)
