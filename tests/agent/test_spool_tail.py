"""The spool's in-memory tail: reads from it equal reads from the segment files, byte for byte."""

from __future__ import annotations

import random

from agent.spool import Spool
from shared.frames import Kind, Record


def _records(first: int, n: int, rng: random.Random, mutable: bool = False) -> list[Record]:
    out = []
    for seq in range(first, first + n):
        kind = rng.choice([Kind.DATA, Kind.DATA, Kind.DATA, Kind.ZEROES, Kind.TRIM, Kind.BOOKMARK])
        if kind is Kind.DATA:
            data = rng.randbytes(rng.randrange(1, 300_000))
            payload = memoryview(bytearray(data) if mutable else data)[0:len(data)]
            out.append(Record("disk0", seq, 1000 + seq, seq * 512, len(data), kind, payload=payload))
        elif kind is Kind.BOOKMARK:
            out.append(Record("disk0", seq, 1000 + seq, 0, 0, kind, payload=f"b{seq}".encode()))
        else:
            out.append(Record("disk0", seq, 1000 + seq, seq * 512, 65536, kind))
    return out


def _flat(entries) -> list[tuple[int, bytes, bytes]]:
    return [(r.sequence, bytes(r.payload), b"".join(bytes(p) for p in enc)) for r, enc in entries]


def test_tail_reads_equal_file_reads_for_any_start_and_size(tmp_path):
    rng = random.Random(7)
    sp = Spool(tmp_path, segment_bytes=2 << 20, tail_bytes=256 << 20)
    seq = 1
    for _ in range(20):
        n = rng.randrange(1, 6)
        sp.append(_records(seq, n, rng))
        seq += n
    files = Spool(tmp_path, segment_bytes=2 << 20, tail_bytes=0)  # the same segments, read from disk
    for _ in range(60):
        start, size = rng.randrange(1, seq), rng.choice([1, 100_000, 1 << 20, 3 << 20])
        got = sp.read_entries(start, size)
        # the file path stops at a segment's end; the tail may go on: compare what both returned
        want = files.read_entries(start, size)
        assert got and _flat(got[:len(want)]) == _flat(want)
        assert [r.sequence for r, _ in got] == list(range(start, start + len(got)))
    assert sp.tail_reads == 60 and files.tail_reads == 0


def test_tail_stops_at_the_same_size_as_the_files_within_a_segment(tmp_path):
    rng = random.Random(3)
    sp = Spool(tmp_path, tail_bytes=256 << 20)  # one 64 MiB segment
    sp.append(_records(1, 40, rng))
    files = Spool(tmp_path, tail_bytes=0)
    for size in (1, 50_000, 1 << 20, 4 << 20):
        assert _flat(sp.read_entries(5, size)) == _flat(files.read_entries(5, size))


def test_acknowledged_entries_leave_the_tail_and_reads_fall_back_to_the_files(tmp_path):
    rng = random.Random(5)
    sp = Spool(tmp_path, tail_bytes=256 << 20)
    sp.append(_records(1, 10, rng))
    sp.mark_acked(6)
    assert sp._tail_first == 7 and len(sp._tail) == 4
    before = sp.tail_reads
    assert [r.sequence for r, _ in sp.read_entries(3, 1)] == [3]  # before the tail: from the file
    assert sp.tail_reads == before
    assert [r.sequence for r, _ in sp.read_entries(7, 1)] == [7] and sp.tail_reads == before + 1


def test_tail_is_bounded_oldest_first(tmp_path):
    sp = Spool(tmp_path, tail_bytes=1 << 20)
    for seq in range(1, 21):
        sp.append([Record("disk0", seq, seq, 0, 200_000, Kind.DATA, payload=bytes(200_000))])
    assert sp._tail_size <= 1 << 20 and sp._tail_first + len(sp._tail) - 1 == 20
    assert sp._tail_first > 1
    assert [r.sequence for r, _ in sp.read_entries(1, 1)] == [1]  # long gone from memory: the file has it


def test_payloads_that_can_change_are_never_kept(tmp_path):
    rng = random.Random(9)
    sp = Spool(tmp_path, tail_bytes=256 << 20)
    recs = _records(1, 8, rng, mutable=True)
    sp.append(recs)
    want = [(r.sequence, bytes(r.payload)) for r in recs]
    for r in recs:  # the writer reuses its buffer for the next request
        if isinstance(r.payload, memoryview) and not r.payload.readonly:
            r.payload[:] = bytes(len(r.payload))
    got = sp.read_entries(1, 1 << 30)
    assert [(r.sequence, bytes(r.payload)) for r, _ in got] == want[:len(got)]
    assert all(r.kind is not Kind.DATA for r, _ in sp._tail)


def test_a_reopened_spool_starts_with_an_empty_tail(tmp_path):
    rng = random.Random(11)
    sp = Spool(tmp_path, tail_bytes=256 << 20)
    sp.append(_records(1, 5, rng))
    sp.close()
    again = Spool(tmp_path, tail_bytes=256 << 20)
    assert not again._tail
    assert [r.sequence for r, _ in again.read_entries(1, 1 << 30)] == [1, 2, 3, 4, 5]
    assert again.tail_reads == 0
