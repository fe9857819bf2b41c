"""Spool: append, read, ack/trim, restart, torn tail."""

from __future__ import annotations

import pytest

from agent.errors import SpoolError
from agent.spool import Spool, entry_parts
from shared.frames import Kind, Record, encode_batch


def rec(seq: int, ts: int | None = None, size: int = 1000, vol: str = "disk0") -> Record:
    data = bytes([seq % 251]) * size
    return Record(vol, seq, ts if ts is not None else 1000 + seq, seq * 4096, size, Kind.DATA, payload=data)


def test_append_read_roundtrip(tmp_path):
    sp = Spool(tmp_path, segment_bytes=10_000)
    for i in range(1, 31):
        sp.append([rec(i)])
    assert sp.last_seq == 30 and sp.last_ts == 1030
    got = []
    nxt = 1
    while nxt <= sp.last_seq:
        batch = sp.read(nxt, 5000)
        assert batch and batch[0].sequence == nxt
        got += batch
        nxt = batch[-1].sequence + 1
    assert [r.sequence for r in got] == list(range(1, 31))
    assert all(r.data() == bytes([r.sequence % 251]) * 1000 for r in got)
    assert len(list(tmp_path.glob("*.seg"))) > 1  # segments rotated at 10 kB
    assert sp.pending() == (30, sp.disk_bytes())


def test_append_refuses_gap(tmp_path):
    sp = Spool(tmp_path)
    sp.append([rec(1)])
    with pytest.raises(SpoolError, match="does not follow"):
        sp.append([rec(3)])


def test_ack_trims_whole_segments_only(tmp_path):
    sp = Spool(tmp_path, segment_bytes=5000)
    for i in range(1, 21):
        sp.append([rec(i)])
    segs_before = sorted(p.name for p in tmp_path.glob("*.seg"))
    sp.ack(7)
    segs_after = sorted(p.name for p in tmp_path.glob("*.seg"))
    assert len(segs_after) < len(segs_before)
    # every remaining record from 8 on is still readable; 1..first-1 are gone
    first = sp.first_available()
    assert 1 < first <= 8
    assert sp.read(8, 1 << 20)[0].sequence == 8
    assert sp.pending()[0] == 13
    sp.ack(20)
    assert sp.pending() == (0, 0)


def test_restart_resumes_sequence_and_ack(tmp_path):
    sp = Spool(tmp_path, segment_bytes=5000)
    for i in range(1, 16):
        sp.append([rec(i)])
    sp.ack(9)
    sp.close()
    sp2 = Spool(tmp_path, segment_bytes=5000)
    assert sp2.last_seq == 15 and sp2.acked_through == 9 and sp2.last_ts == 1015
    assert [r.sequence for r in sp2.read(10, 1 << 20)][0] == 10
    sp2.append([rec(16)])
    sp2.ack(16)
    sp2.close()
    # fully acked and trimmed: numbering still continues from the state file
    sp3 = Spool(tmp_path, segment_bytes=5000)
    assert sp3.last_seq == 16 and sp3.pending() == (0, 0)


def test_restart_cuts_torn_tail(tmp_path):
    sp = Spool(tmp_path)
    sp.append([rec(i) for i in range(1, 6)])
    sp.close()
    seg = sorted(tmp_path.glob("*.seg"))[-1]
    size = seg.stat().st_size
    with open(seg, "r+b") as fh:  # a crash in the middle of appending record 5
        fh.truncate(size - 300)
    sp2 = Spool(tmp_path)
    assert sp2.last_seq == 4
    sp2.append([rec(5)])
    assert sp2.read(5, 1 << 20)[0].data() == rec(5).data()


def test_corrupt_tail_record_is_cut(tmp_path):
    sp = Spool(tmp_path)
    sp.append([rec(i) for i in range(1, 4)])
    sp.close()
    seg = sorted(tmp_path.glob("*.seg"))[-1]
    with open(seg, "r+b") as fh:
        fh.seek(seg.stat().st_size - 10)
        fh.write(b"\xff" * 10)
    assert Spool(tmp_path).last_seq == 2


def test_damaged_older_segment_is_refused(tmp_path):
    sp = Spool(tmp_path, segment_bytes=3000)
    for i in range(1, 10):
        sp.append([rec(i)])
    sp.close()
    first = sorted(tmp_path.glob("*.seg"))[0]
    with open(first, "r+b") as fh:
        fh.truncate(first.stat().st_size - 50)
    with pytest.raises(SpoolError, match="re-protect"):
        Spool(tmp_path, segment_bytes=3000)


def test_timestamps_and_sync(tmp_path):
    sp = Spool(tmp_path)
    sp.append([rec(1, ts=50), rec(2, ts=70)])
    sp.sync()
    assert sp.timestamp_of(1) == 50 and sp.timestamp_of(2) == 70 and sp.timestamp_of(3) is None
    sp.close()
    assert Spool(tmp_path).timestamp_of(2) == 70


def test_entry_encoding_is_the_shared_codec():
    for r in (rec(7), Record("v", 9, 5, 0, 100, Kind.ZEROES), Record("v", 10, 6, 0, 0, Kind.BOOKMARK, payload=b"bm")):
        body = encode_batch([r])
        assert b"".join(bytes(x) for x in entry_parts(r)) == len(body).to_bytes(4, "little") + body


# -- recycling of retired segment files ------------------------------------------

def _fill(sp: Spool, first: int, last: int) -> None:
    for i in range(first, last + 1):
        sp.append([rec(i)])


def _read_all(sp: Spool, first: int, size: int = 1000) -> list[int]:
    """Sequences first..last read back, each payload checked against rec(seq, size=size)."""
    out, nxt = [], first
    while nxt <= sp.last_seq:
        got = sp.read(nxt, 1 << 20)
        assert got and got[0].sequence == nxt
        assert all(r.data() == rec(r.sequence, size=size).data() for r in got)
        out += [r.sequence for r in got]
        nxt = got[-1].sequence + 1
    return out


def test_retired_segments_are_recycled_not_recreated(tmp_path):
    sp = Spool(tmp_path, segment_bytes=5000, spare_segments=2)
    _fill(sp, 1, 20)
    inodes = {p.stat().st_ino for p in tmp_path.glob("*.seg")}
    sp.ack(20)
    spares = sorted(tmp_path.glob("*.spare"))
    assert len(spares) == 2  # the rest deleted: bounded disk use
    spare_inodes = {p.stat().st_ino for p in spares}
    assert spare_inodes <= inodes
    _fill(sp, 21, 40)
    assert not list(tmp_path.glob("*.spare"))  # both reused by the next rotations
    assert spare_inodes <= {p.stat().st_ino for p in tmp_path.glob("*.seg")}
    assert _read_all(sp, 21) == list(range(21, 41))
    sp.close()
    assert _read_all(Spool(tmp_path, segment_bytes=5000), 21) == list(range(21, 41))


def test_stale_entries_past_the_end_of_recycled_files_are_ignored_on_restart(tmp_path):
    # Big entries first, then small ones: each recycled file keeps older, valid-looking
    # entries (and entry fragments) past its logical end. A crash leaves them there.
    sp = Spool(tmp_path, segment_bytes=20_000, spare_segments=4)
    for i in range(1, 31):
        sp.append([rec(i, size=3000)])
    sp.ack(30)
    for i in range(31, 61):
        sp.append([rec(i, size=700)])
    sizes = {p.name: p.stat().st_size for p in tmp_path.glob("*.seg")}
    assert max(sizes.values()) > 20_000  # the stale bytes are really there
    sp.sync()
    del sp  # no close(): as after a crash
    sp2 = Spool(tmp_path, segment_bytes=20_000)
    assert sp2.last_seq == 60 and sp2.acked_through == 30
    got = _read_all(sp2, 31, size=700)
    assert got == list(range(31, 61))
    sp2.append([rec(61, size=700)])
    assert sp2.read(61, 1 << 20)[0].data() == rec(61, size=700).data()


def test_torn_append_over_stale_bytes_is_cut(tmp_path):
    sp = Spool(tmp_path, segment_bytes=5000, spare_segments=2)
    _fill(sp, 1, 20)
    sp.ack(20)
    _fill(sp, 21, 23)  # into a recycled file
    sp.sync()
    seg = sorted(tmp_path.glob("*.seg"))[-1]
    del sp
    with open(seg, "r+b") as fh:  # record 23's payload only half written over the stale bytes
        fh.seek(2 * (4 + len(encode_batch([rec(21)]))) + 600)
        fh.write(b"\x00" * 200)
    sp2 = Spool(tmp_path, segment_bytes=5000)
    assert sp2.last_seq == 22
    sp2.append([rec(23)])
    assert _read_all(sp2, 21) == [21, 22, 23]


def test_spares_of_an_earlier_run_are_deleted_on_open(tmp_path):
    sp = Spool(tmp_path, segment_bytes=5000, spare_segments=2)
    _fill(sp, 1, 20)
    sp.ack(20)
    sp.close()
    assert list(tmp_path.glob("*.spare"))
    Spool(tmp_path, segment_bytes=5000)
    assert not list(tmp_path.glob("*.spare"))


def test_no_spares_means_retired_files_are_deleted(tmp_path):
    sp = Spool(tmp_path, segment_bytes=5000, spare_segments=0)
    _fill(sp, 1, 20)
    sp.ack(20)
    assert not list(tmp_path.glob("*.spare"))
    assert len(list(tmp_path.glob("*.seg"))) <= 1


def test_marked_ack_is_saved_and_trimmed_only_when_persisted(tmp_path):
    sp = Spool(tmp_path, segment_bytes=5000)
    _fill(sp, 1, 20)
    sp.save_state()
    segs = len(list(tmp_path.glob("*.seg")))
    assert sp.mark_acked(20) and not sp.mark_acked(19)  # monotonic
    assert sp.acked_through == 20 and sp.pending() == (0, 0)
    assert len(list(tmp_path.glob("*.seg"))) == segs  # nothing trimmed yet
    del sp
    assert Spool(tmp_path, segment_bytes=5000).acked_through == 0  # not saved: a crash forgets it


def test_persist_acked_saves_then_trims(tmp_path):
    sp = Spool(tmp_path, segment_bytes=5000)
    _fill(sp, 1, 20)
    sp.mark_acked(20)
    sp.persist_acked()
    assert len(list(tmp_path.glob("*.seg"))) <= 1
    sp.persist_acked()  # nothing new: no-op
    sp.mark_acked(15)
    sp.ack(15)  # an older ack saves nothing new either
    sp.close()
    assert Spool(tmp_path, segment_bytes=5000).acked_through == 20
