"""Profile-only tap end to end: NBD client -> ProfileTap -> disk + profile file (nothing shipped)."""

from __future__ import annotations

import os
import stat

import pytest
import typer
from typer.testing import CliRunner

from agent.nbd.client import connect
from agent.profile.cli import register_profile
from agent.profile.reader import read_profile
from agent.profile.tap import ProfileTap
from tests.agent.conftest import short_dir


def test_tap_applies_writes_and_records_them(tmp_path):
    disk = tmp_path / "d.img"
    with open(disk, "wb") as f:
        f.truncate(16 << 20)
    tap = ProfileTap({"disk0": disk}, tmp_path / "prof", "web1", unix_path=short_dir() / "p.sock",
                     sample_every_bytes=1)
    tap.start()
    try:
        assert stat.S_IMODE(tap.unix_path.stat().st_mode) == 0o600
        payload = os.urandom(65536)
        with connect(tap.unix_path, None, "disk0") as nbd:
            for i in range(10):
                nbd.pwrite(payload, (i % 4) * 65536)
            assert nbd.pread(65536, 65536) == payload  # the tap applies writes to the disk
            nbd.zero(1 << 20, 8192)  # (length, offset)
            nbd.trim(4096, 2 << 20)
            nbd.flush()
            assert nbd.pread(4096, 65536) == bytes(4096)
    finally:
        tap.stop()
    prof = read_profile(tmp_path / "prof" / "web1.disk0.dbprof")
    r = prof.records
    assert prof.header.server == "web1" and prof.header.volume_size == 16 << 20
    assert int(r["iops"].sum()) == 12
    assert int(r["write_bytes"].sum()) == 10 * 65536
    assert int(r["overwrite_bytes"].sum()) == 6 * 65536  # four distinct 64 KiB regions, rewritten
    assert int(r["zero_bytes"].sum()) == 1 << 20 and int(r["trim_bytes"].sum()) == 4096
    assert int(r["sample_raw"].sum()) == 10 * 65536  # every write sampled here
    assert int(r["sample_zstd"].sum()) == 10 * 65536  # random data: sent raw, ratio 1


def test_plain_tcp_is_refused(tmp_path):
    disk = tmp_path / "d.img"
    disk.write_bytes(bytes(1 << 20))
    with pytest.raises(ValueError, match="mutual TLS"):
        ProfileTap({"disk0": disk}, tmp_path / "prof", "web1", port=0)


def test_register_profile_adds_the_command():
    app = typer.Typer()
    agent_app = typer.Typer()
    register_profile(agent_app)
    app.add_typer(agent_app, name="agent")
    r = CliRunner().invoke(app, ["agent", "profile", "--help"])
    assert r.exit_code == 0 and "ships nothing" in r.output
    r = CliRunner().invoke(app, ["agent", "profile", "--volume", "nope", "--out", "/tmp/x"])
    assert r.exit_code == 2 and "NAME=PATH" in r.output
