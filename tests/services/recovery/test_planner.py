"""Planner: recovery points and request validation (MemoryObjectStore)."""

from __future__ import annotations

import pytest

from services.recovery.errors import BadRequest, NotFound, OutOfRange
from services.recovery.planner import At, chain, load_group
from shared.frames import data_record
from shared.journal import INITIAL_SYNC_BOOKMARK, TimelineEntry
from shared.objectstore.memory import MemoryObjectStore
from tests.services.recovery.journal_builder import write_journal
from tests.services.retention.helpers import bookmark

SIZE = 1 << 16
BUCKET = "dialback-acme"


def _records():
    recs = [data_record("disk0", s, 1000 + 10 * s, (s % 8) * 4096, bytes([s]) * 4096) for s in range(1, 21)]
    recs[9] = bookmark("disk0", 10, 1100, INITIAL_SYNC_BOOKMARK)
    recs[14] = bookmark("disk0", 15, 1150, "before-upgrade")
    return recs


@pytest.fixture
def store():
    s = MemoryObjectStore()
    write_journal(s, "acme", "g1", {"disk0": SIZE}, _records(), per_batch=3, per_segment=2)
    return s


def test_points(store):
    j = load_group(store, BUCKET, "g1")
    assert (j.earliest.sequence, j.earliest.timestamp_ns) == (10, 1100)
    assert (j.latest.sequence, j.latest.timestamp_ns) == (20, 1200)
    assert [(b.name, b.sequence) for b in j.bookmarks] == [(INITIAL_SYNC_BOOKMARK, 10), ("before-upgrade", 15)]


@pytest.mark.parametrize("kw", [{}, {"sequence": 3, "bookmark": "x"}, {"sequence": 1, "timestamp_ns": 5},
                                {"sequence": 0}, {"timestamp_ns": -1}, {"bookmark": ""}])
def test_request_shape_refused(kw):
    with pytest.raises(BadRequest):
        At.of(**kw)


def test_resolve_sequence_bookmark_time(store):
    j = load_group(store, BUCKET, "g1")
    assert j.resolve(At.of(sequence=12), store).sequence == 12
    assert j.resolve(At.of(sequence=12), store).timestamp_ns == 1120
    assert j.resolve(At.of(bookmark="before-upgrade"), store).sequence == 15
    # ts 1135 falls between records 13 (1130) and 14 (1140): the point is 13.
    assert j.resolve(At.of(timestamp_ns=1135), store).sequence == 13
    assert j.resolve(At.of(timestamp_ns=1100), store).sequence == 10
    assert j.resolve(At.of(timestamp_ns=1200), store).sequence == 20


@pytest.mark.parametrize("at", [At.of(sequence=9), At.of(sequence=21), At.of(timestamp_ns=1099),
                                At.of(timestamp_ns=1201)])
def test_outside_range_refused(store, at):
    j = load_group(store, BUCKET, "g1")
    with pytest.raises(OutOfRange):
        j.resolve(at, store)


def test_unknown_group_volume_bookmark(store):
    with pytest.raises(NotFound):
        load_group(store, BUCKET, "nope")
    with pytest.raises(NotFound):
        load_group(store, "dialback-other", "g1")
    j = load_group(store, BUCKET, "g1")
    with pytest.raises(NotFound):
        j.check_volumes("disk9")
    with pytest.raises(NotFound):
        j.resolve(At.of(bookmark="never"), store)
    assert j.check_volumes("all") == ["disk0"]


def test_no_initial_sync_means_nothing_recoverable():
    s = MemoryObjectStore()
    recs = [data_record("disk0", i, i, 0, b"a" * 512) for i in range(1, 6)]
    write_journal(s, "acme", "g1", {"disk0": SIZE}, recs)
    j = load_group(s, BUCKET, "g1")
    assert j.earliest is None
    with pytest.raises(OutOfRange, match="initial sync"):
        j.resolve(At.of(sequence=3), s)


def _e(first, last):
    return TimelineEntry(first, last, first, last, f"s{first}-{last}", 1)


def test_chain_skips_covered_and_stops_at_hole():
    entries = [_e(1, 10), _e(1, 5), _e(6, 12), _e(11, 20), _e(25, 30)]
    assert [(e.first_seq, e.last_seq) for e in chain(entries)] == [(1, 10), (6, 12), (11, 20)]
    assert chain([_e(2, 5)]) == []
