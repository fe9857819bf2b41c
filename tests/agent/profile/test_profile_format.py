"""Profile file: round trip, torn tail tolerated, corruption refused with its offset, append continues."""

from __future__ import annotations

import os

import pytest

from agent.profile.format import HEADER_SIZE, RECORD_SIZE, Header, ProfileCorrupt, ProfileError, Second, bucket_of
from agent.profile.reader import read_profile
from agent.profile.writer import ProfileWriter


def _write(path, n=5, start=1000):
    with ProfileWriter(path, Header("web1", "disk0", 1 << 30)) as w:
        for i in range(n):
            hist = [0] * 16
            hist[i % 16] = i + 1
            w.append(Second(start + i, 1, i + 1, 4096 * (i + 1), 0, 512 * i, 4096 * i, 100 + i, 50 + i, tuple(hist)))
        w.append(Second(start + n, 60))  # an idle minute


def test_round_trip(tmp_path):
    p = tmp_path / "a.dbprof"
    _write(p)
    prof = read_profile(p)
    assert prof.header.server == "web1" and prof.header.volume_size == 1 << 30
    assert os.path.getsize(p) == HEADER_SIZE + 6 * RECORD_SIZE
    r = prof.records
    assert list(r["time"]) == [1000, 1001, 1002, 1003, 1004, 1005]
    assert list(r["span"]) == [1, 1, 1, 1, 1, 60]
    assert list(r["write_bytes"][:5]) == [4096 * (i + 1) for i in range(5)]
    assert list(r["trim_bytes"][:5]) == [512 * i for i in range(5)]
    assert int(r["hist"][3][3]) == 4
    assert prof.torn_tail_offset is None and not prof.warnings


def test_torn_partial_record_is_tolerated_and_reported(tmp_path):
    p = tmp_path / "a.dbprof"
    _write(p)
    with open(p, "ab") as f:
        f.write(b"\x01" * 50)
    prof = read_profile(p)
    assert len(prof.records) == 6
    assert prof.torn_tail_offset == HEADER_SIZE + 6 * RECORD_SIZE
    assert str(prof.torn_tail_offset) in prof.warnings[0]


def test_damaged_last_record_counts_as_torn(tmp_path):
    p = tmp_path / "a.dbprof"
    _write(p)
    data = bytearray(p.read_bytes())
    data[-10] ^= 0xFF
    p.write_bytes(bytes(data))
    prof = read_profile(p)
    assert len(prof.records) == 5
    assert prof.torn_tail_offset == HEADER_SIZE + 5 * RECORD_SIZE


def test_corruption_in_the_middle_is_refused_with_offset(tmp_path):
    p = tmp_path / "a.dbprof"
    _write(p)
    data = bytearray(p.read_bytes())
    off = HEADER_SIZE + 2 * RECORD_SIZE
    data[off + 9] ^= 0x40
    p.write_bytes(bytes(data))
    with pytest.raises(ProfileCorrupt) as exc:
        read_profile(p)
    assert f"offset {off}" in str(exc.value) and "record 2" in str(exc.value)


def test_truncated_header_and_wrong_magic(tmp_path):
    p = tmp_path / "a.dbprof"
    p.write_bytes(b"DBPF\x01")
    with pytest.raises(ProfileCorrupt, match="shorter than the"):
        read_profile(p)
    p.write_bytes(b"NOPE" + bytes(HEADER_SIZE))
    with pytest.raises(ProfileCorrupt, match="bad magic"):
        read_profile(p)
    with pytest.raises(ProfileError, match="cannot read"):
        read_profile(tmp_path / "missing.dbprof")


def test_records_going_back_in_time_are_corruption(tmp_path):
    p = tmp_path / "a.dbprof"
    _write(p, n=3)
    with open(p, "ab") as f:
        f.write(Second(1001, 1, 1, 1).encode())
        f.write(Second(5000, 1, 1, 1).encode())  # keeps the bad one out of the tail
    with pytest.raises(ProfileCorrupt, match=f"offset {HEADER_SIZE + 4 * RECORD_SIZE}"):
        read_profile(p)


def test_reopen_cuts_torn_tail_and_appends(tmp_path):
    p = tmp_path / "a.dbprof"
    _write(p, n=2)
    with open(p, "ab") as f:
        f.write(b"\x00" * 7)
    with ProfileWriter(p, Header("web1", "disk0")) as w:
        assert w.next_time == 1000 + 2 + 60
        with pytest.raises(ProfileError, match="goes back"):
            w.append(Second(1001))
        w.append(Second(2000, 1, 3, 999))
    prof = read_profile(p)
    assert prof.torn_tail_offset is None
    assert list(prof.records["time"]) == [1000, 1001, 1002, 2000]


def test_reopen_refuses_another_server(tmp_path):
    p = tmp_path / "a.dbprof"
    _write(p, n=1)
    with pytest.raises(ProfileError, match="already a profile of web1"):
        ProfileWriter(p, Header("db9"))


def test_bucket_of():
    assert [bucket_of(n) for n in (1, 512, 513, 4096, 4097, 1 << 20, 8 << 20, 9 << 20, 1 << 30)] == \
        [0, 0, 1, 3, 4, 11, 14, 15, 15]
