"""ProfileRecorder (the tap's hook), locality tracker and the importers."""

from __future__ import annotations

import os
import struct
import threading

import zstandard

from agent.profile.blkparse import import_blkparse
from agent.profile.frames_import import import_frames_file
from agent.profile.locality import LocalityTracker
from agent.profile.reader import read_profile
from agent.profile.recorder import ProfileRecorder
from shared.frames import Kind, data_record, encode_batch


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_recorder_counts_seconds_kinds_and_overwrites(tmp_path):
    clock = Clock(1_000_000.2)
    rec = ProfileRecorder(str(tmp_path / "p"), "web1", "disk0", 1 << 30, clock=clock)
    rec.on_write(0, 8192, b"\0" * 8192)                 # new blocks 0-1
    rec.on_write(4096, 4096, b"a" * 4096)              # overwrites block 1
    rec.on_write(1 << 20, 65536, None, Kind.ZEROES)    # enum kinds work, no payload
    rec.on_write(0, 0, None, Kind.BOOKMARK)            # ignored
    clock.t += 1
    rec.on_write(1 << 21, 4096, os.urandom(4096), "data")
    rec.on_write(8192, 4096, None, "trim")
    clock.t += 1
    assert rec.tick() == 2
    clock.t += 1000  # idle time while running
    rec.close()
    prof = read_profile(tmp_path / "p")
    r = prof.records
    assert list(r["time"][:2]) == [1_000_000, 1_000_001]
    assert list(r["iops"][:2]) == [3, 2]
    assert list(r["write_bytes"][:2]) == [12288, 4096]
    assert int(r["zero_bytes"][0]) == 65536 and int(r["trim_bytes"][1]) == 4096
    assert int(r["overwrite_bytes"][0]) == 4096 and int(r["overwrite_bytes"][1]) == 0
    # the idle stretch after the last busy second is one span record up to close
    assert int(r["span"][-1]) >= 1000 and int(r["write_bytes"][-1]) == 0
    assert int(r["time"][-1] + r["span"][-1]) == int(clock.t) + 1
    # the first write is always sampled: zeros compress, and never count larger than raw
    assert int(r["sample_raw"][0]) == 8192 and 0 < int(r["sample_zstd"][0]) < 100


def test_sampling_measures_compressibility(tmp_path):
    clock = Clock(50.0)
    rec = ProfileRecorder(str(tmp_path / "p"), "s", clock=clock, sample_every_bytes=64 << 10)
    text = (b"the quick brown fox jumps over the lazy dog " * 2000)[:65536]
    noise = os.urandom(65536)
    for i in range(200):
        rec.on_write(i * 65536, 65536, text if i % 2 else noise)
        if i % 20 == 19:
            clock.t += 1
    rec.close()
    r = read_profile(tmp_path / "p").records
    raw, comp = int(r["sample_raw"].sum()), int(r["sample_zstd"].sum())
    expect = (len(zstandard.ZstdCompressor(level=1).compress(text)) + 65536) / (2 * 65536)
    assert raw >= 100 * 65536
    assert abs(comp / raw - expect) < 0.05


def test_sampling_budget_drops_samples(tmp_path):
    clock = Clock(10.0)
    rec = ProfileRecorder(str(tmp_path / "p"), "s", clock=clock, sample_every_bytes=1,
                          sample_budget_per_s=100_000)
    for i in range(100):
        rec.on_write(i * 4096, 4096, b"x" * 4096)
    rec.close()
    r = read_profile(tmp_path / "p").records
    assert int(r["sample_raw"].sum()) <= 100_000
    assert rec.samples_dropped == 100 - int(r["sample_raw"].sum()) // 4096


def test_recorder_is_thread_safe(tmp_path):
    rec = ProfileRecorder(str(tmp_path / "p"), "s").start()

    def worker(k):
        for i in range(2000):
            rec.on_write((k * 100000 + i) * 4096, 4096, None)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rec.close()
    r = read_profile(tmp_path / "p").records
    assert int(r["iops"].sum()) == 8000 and int(r["write_bytes"].sum()) == 8000 * 4096


def test_locality_window_and_partial_blocks():
    lt = LocalityTracker(4096, window_s=10)
    assert lt.touch(0, 8192, 0) == 0
    assert lt.touch(100, 50, 1) == 50           # inside block 0, capped at the write length
    assert lt.touch(4096, 8192, 15) == 4096     # block 1 still in the previous generation
    assert lt.touch(0, 4096, 25) == 0           # block 0 written at t=0/1 has aged out
    lt2 = LocalityTracker(4096, window_s=10**6, max_blocks=4)
    lt2.touch(0, 5 * 4096, 0)
    assert lt2.early_rotations == 1


BLKPARSE = """\
  8,0    3        1     0.000000000  4162  Q  WS 2048 + 8 [kjournald]
  8,0    3        2     0.000009873  4162  G  WS 2048 + 8 [kjournald]
  8,0    3        3     0.500000000  4162  Q   W 2056 + 16 [dd]
  8,0    3        4     0.600000000  4162  Q   R 9999 + 8 [cat]
  8,16   1        1     1.200000000  4162  Q   W 0 + 8 [dd]
  8,0    0        5     3.100000000  4162  Q  WS 2048 + 8 [kjournald]
  8,0    0        6     3.200000000  4162  Q  DS 4096 + 2048 [fstrim]
  8,0    0        7     3.300000000  4162  C  WS 2048 + 8 [0]
CPU0 (8,0):
 Reads Queued:           1,        4KiB	 Writes Queued:           4,       24KiB
"""


def test_blkparse_import(tmp_path):
    out = tmp_path / "t.dbprof"
    st = import_blkparse(BLKPARSE.splitlines(), str(out), "db1", start_unix=1_700_000_000, device="8,0")
    assert (st.writes, st.trims, st.skipped_devices) == (3, 1, 1)
    prof = read_profile(out)
    r = prof.records
    assert prof.header.server == "db1"
    assert list(r["time"]) == [1_700_000_000, 1_700_000_001, 1_700_000_003]
    assert list(r["span"]) == [1, 2, 1]  # seconds 1-2 idle while tracing
    assert int(r["write_bytes"][0]) == (8 + 16) * 512
    assert int(r["write_bytes"][2]) == 8 * 512 and int(r["overwrite_bytes"][2]) == 4096
    assert int(r["trim_bytes"][2]) == 2048 * 512
    assert int(r["sample_raw"].sum()) == 0  # traces carry no payloads


def test_blkparse_without_writes_says_what_to_do(tmp_path):
    import pytest

    from agent.profile.format import ProfileError

    with pytest.raises(ProfileError, match="--action C"):
        import_blkparse(["garbage", "  8,0 1 1 0.1 5 C W 8 + 8 [0]"], str(tmp_path / "x"), "s", start_unix=0)


def test_frames_import_from_spool_segment(tmp_path):
    seg = tmp_path / "00000000000000000001.seg"
    payload = b"abcd" * 1024
    t0 = 1_700_000_000 * 10**9
    with open(seg, "wb") as f:
        for i in range(10):
            rec = data_record("disk0", i + 1, t0 + i * 300_000_000, i * 4096 % 8192, payload, compress=(i % 2 == 0))
            body = encode_batch([rec])
            f.write(struct.pack("<I", len(body)) + body)
        f.write(b"\x05\x00")  # torn tail of the newest segment
    st = import_frames_file(str(tmp_path), str(tmp_path / "p.dbprof"), "web1")
    assert st.records_in == 10 and "torn" in st.torn_tail
    r = read_profile(tmp_path / "p.dbprof").records
    assert list(r["time"]) == [1_700_000_000 + k for k in range(3)]
    assert list(r["iops"]) == [4, 3, 3]
    assert int(r["write_bytes"].sum()) == 10 * 4096
    assert int(r["overwrite_bytes"].sum()) == 8 * 4096  # two blocks, alternately rewritten
    assert 0 < int(r["sample_zstd"].sum()) < int(r["sample_raw"].sum()) // 10
