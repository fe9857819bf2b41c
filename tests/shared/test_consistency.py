"""The inconsistency-window rule shared by recovery, exports and burst (shared/consistency.py)."""

from __future__ import annotations

from shared.consistency import (Window, latest_consistent, resync_complete_name, resync_start_name,
                                window_at_sequence, window_at_time, windows)
from shared.journal import INITIAL_SYNC_BOOKMARK, Bookmark


def bm(name: str, seq: int, ts: int | None = None) -> Bookmark:
    return Bookmark(name, seq, ts if ts is not None else seq * 10)


SYNC = bm(INITIAL_SYNC_BOOKMARK, 20)
START = bm(resync_start_name(41), 41, 400)  # stamped with the last in-order record's time (seq 40)
END = bm(resync_complete_name(60), 60)


def test_initial_sync_window_runs_from_the_journal_start_to_its_bookmark():
    (w,) = windows([SYNC])
    assert w == Window("initial-sync", None, SYNC)
    assert w.holds_sequence(1) and w.holds_sequence(19)
    assert not w.holds_sequence(20)  # exactly at the end: consistent
    assert w.holds_time(0) and not w.holds_time(200)


def test_resync_window_is_open_between_its_markers_and_both_ends_are_consistent():
    wins = windows([SYNC, bm("nightly", 30), START, END])
    assert [w.kind for w in wins] == ["initial-sync", "resync"]
    w = wins[1]
    assert (w.start, w.end) == (START, END)
    assert window_at_sequence(wins, 41) is None and window_at_sequence(wins, 60) is None
    assert window_at_sequence(wins, 42) is w and window_at_sequence(wins, 59) is w
    assert window_at_sequence(wins, 61) is None
    assert window_at_time(wins, 400) is None and window_at_time(wins, 401) is w
    assert window_at_time(wins, 599) is w and window_at_time(wins, 600) is None


def test_open_window_makes_its_start_the_latest_consistent_point():
    wins = windows([SYNC, START])
    assert wins[-1].end is None and wins[-1].to_dict()["open"]
    assert window_at_sequence(wins, 10_000) is wins[-1]
    assert window_at_time(wins, 10**18) is wins[-1]
    assert latest_consistent(wins, bm("x", 50)) == START
    assert latest_consistent(wins, bm("x", 41)) == bm("x", 41)
    assert latest_consistent(windows([SYNC, START, END]), bm("x", 70)) == bm("x", 70)
    assert latest_consistent(wins, None) is None


def test_multiple_windows_and_a_second_start_inside_an_open_window():
    s2, again, e2 = bm(resync_start_name(80), 80), bm(resync_start_name(90), 90), bm(resync_complete_name(99), 99)
    wins = windows([e2, again, s2, END, START, SYNC])  # order of the input does not matter
    assert [(w.start, w.end) for w in wins] == [(None, SYNC), (START, END), (s2, e2)]
    assert window_at_sequence(wins, 70) is None
    assert window_at_sequence(wins, 95) is wins[2]  # the overflow during the resync does not reopen at 90


def test_end_without_start_opens_after_the_previous_consistent_marker():
    # GC removed the start marker (or the journal predates start markers): the conservative reading.
    (w,) = windows([END])
    assert w.start is None and w.holds_sequence(1)
    wins = windows([SYNC, bm("nightly", 30), END])
    assert wins[1].start == bm("nightly", 30)  # a user bookmark is never taken inside a window
    assert window_at_sequence(wins, 31) is wins[1] and window_at_sequence(wins, 30) is None
    # internal bookmarks other than the markers prove nothing
    assert windows([SYNC, bm("dialback.other", 30), END])[1].start == SYNC


def test_user_bookmarks_and_no_markers_mean_no_windows():
    assert windows([]) == []
    assert windows([bm("a", 5), bm("b", 9)]) == []


def test_an_overflow_during_the_initial_sync_folds_into_the_initial_sync_window():
    s, e = bm(resync_start_name(8), 8), bm(resync_complete_name(12), 12)
    assert windows([s, e, SYNC]) == [Window("initial-sync", None, SYNC)]
    late_end = bm(resync_complete_name(25), 25)  # the resync was still under way at the sync bookmark
    assert windows([s, SYNC, late_end]) == [Window("initial-sync", None, late_end)]
    assert windows([s, SYNC]) == [Window("initial-sync", None, None)]
    assert latest_consistent(windows([s, SYNC]), bm("x", 30)) is None
