"""NBD protocol: our client, then real clients (qemu-io, nbdinfo)."""

from __future__ import annotations

import os
import struct
import subprocess

import pytest

from agent.nbd import protocol as p
from agent.nbd.client import NbdClientError, NbdRequestError, connect, list_exports, raw_option
from agent.runtime import AgentThread
from shared.frames import Kind
from tests.agent.conftest import agent_settings, make_image
from tests.agent.test_group import all_records, replay_matches

MiB = 1 << 20


@pytest.fixture
def tap(tmp_path):
    """An agent with two exports whose ingest is unreachable (records stay in the spool)."""
    a = make_image(tmp_path / "a.img", 16 * MiB)
    b = make_image(tmp_path / "b.img", 8 * MiB)
    handle = AgentThread(agent_settings(tmp_path, "http://127.0.0.1:9", {"disk0": a, "disk1": b})).start()
    try:
        yield handle
    finally:
        handle.stop()


def test_handshake_info_and_list(tap):
    sock = tap.agent.nbd_socket
    assert list_exports(sock, None) == ["disk0", "disk1"]
    with connect(sock, export="disk1") as c:
        assert c.size == 8 * MiB
        for flag in (p.TFLAG_HAS_FLAGS, p.TFLAG_SEND_FLUSH, p.TFLAG_SEND_FUA, p.TFLAG_SEND_TRIM,
                     p.TFLAG_SEND_WRITE_ZEROES):
            assert c.flags & flag
        assert not c.flags & p.TFLAG_READ_ONLY
        assert c.block_sizes == (1, 4096, 4 * MiB)
    name = b"disk0"
    assert raw_option(sock, None, p.OPT_INFO, struct.pack(">I", 5) + name + struct.pack(">H", 0)) == p.REP_INFO
    assert raw_option(sock, None, p.OPT_STRUCTURED_REPLY) == p.REP_ERR_UNSUP
    assert raw_option(sock, None, 10) == p.REP_ERR_UNSUP  # SET_META_CONTEXT
    assert raw_option(sock, None, p.OPT_GO, b"\x00") == p.REP_ERR_INVALID


def test_unknown_export_is_refused(tap):
    with pytest.raises(NbdClientError, match="refused"):
        connect(tap.agent.nbd_socket, export="nope")


def test_commands_are_applied_and_captured(tap, tmp_path):
    g = tap.group
    data = os.urandom(5 * MiB // 4)
    with connect(tap.agent.nbd_socket, export="disk0") as c:
        c.pwrite(data, 4095)
        c.pwrite(b"fua!" * 1024, 10 * MiB, fua=True)
        c.trim(8192, 4096 * 2)
        c.zero(65536, 12 * MiB, no_hole=True)
        c.zero(4096, 12 * MiB + 65536, fua=True)
        c.flush()
        assert c.pread(len(data), 4095)[8192 - 4095 + 8192:] == data[8192 - 4095 + 8192:]
        assert c.pread(8192, 8192) == bytes(8192)
        assert c.pread(4096, 10 * MiB) == b"fua!" * 1024
        with pytest.raises(NbdRequestError) as err:
            c.pwrite(b"x", 16 * MiB)  # past the end
        assert err.value.errno == p.ENOSPC
        with pytest.raises(NbdRequestError) as err:
            c.pread(4 * MiB + 1, 0)  # over the advertised maximum
        assert err.value.errno == p.EOVERFLOW
        assert c.pread(1, 0) == b"\0"  # the connection survived the errors
    with connect(tap.agent.nbd_socket, export="disk1") as c:
        c.pwrite(b"other volume", 0)
    recs = all_records(g)
    # each NBD write has a buffer of its own, so the spool's in-memory tail may keep its payload
    tail = {r.sequence: bytes(r.payload) for r, _enc, _n in g.spool._tail}
    assert tail.get(recs[-1].sequence) == b"other volume"
    kinds = [r.kind for r in recs]
    assert kinds.count(Kind.TRIM) == 1 and kinds.count(Kind.ZEROES) == 2
    assert {r.volume for r in recs} == {"disk0", "disk1"}
    assert [r.sequence for r in recs] == list(range(1, len(recs) + 1))
    assert replay_matches(tmp_path, g, recs)


def test_qemu_io_writes_then_reads_back(tap, tmp_path):
    uri = f"nbd+unix:///disk0?socket={tap.agent.nbd_socket}"
    cmds = ["write -P 0xab 0 1M", "write -f -P 0xcd 3M 64k", "write -z 2M 128k", "discard 4M 1M",
            "flush", "read -P 0xab 0 1M", "read -P 0xcd 3M 64k", "read -P 0 2M 128k", "read -P 0 4M 1M",
            "write -P 0x11 5M 6M", "read -P 0x11 5M 6M"]
    argv = ["qemu-io", "-f", "raw"] + [a for c in cmds for a in ("-c", c)] + [uri]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "Pattern verification failed" not in res.stdout
    assert res.stdout.count("read ") == 5
    with open(tmp_path / "a.img", "rb") as fh:
        assert fh.read(MiB) == b"\xab" * MiB
        fh.seek(5 * MiB)
        assert fh.read(6 * MiB) == b"\x11" * (6 * MiB)  # 6M write split by qemu at our 4 MiB maximum
    recs = all_records(tap.group)
    assert max(r.length for r in recs if r.kind == Kind.DATA) <= 256 << 10
    assert replay_matches(tmp_path, tap.group, recs)


def test_nbdinfo_sees_the_advertised_capabilities(tap):
    res = subprocess.run(["nbdinfo", f"nbd+unix:///disk0?socket={tap.agent.nbd_socket}"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    for line in ("can_flush: true", "can_fua: true", "can_trim: true", "can_zero: true",
                 "block_size_maximum: 4194304", "export-size: 16777216"):
        assert line in res.stdout
