"""Consistency group: sequence/timestamp rules, capture order, sync, overflow."""

from __future__ import annotations

import hashlib
import os
import random
import threading

import pytest

from agent.disk import Disk
from agent.errors import BookmarkError
from agent.group import INITIAL_SYNC_BOOKMARK, PIECE, Group
from agent.replay import apply_records
from agent.spool import Spool
from agent.sync import Syncer
from shared.frames import Kind
from tests.agent.conftest import make_image

MiB = 1 << 20


def open_group(tmp_path, sizes: dict[str, int], limit: int = 1 << 30, low: int | None = None,
               segment: int = 1 << 20, registered: bool = True) -> Group:
    disks = {}
    for name, size in sizes.items():
        path = tmp_path / f"{name}.img"
        if not path.exists():
            make_image(path, size)
        disks[name] = Disk(name, path)
    g = Group("grp", disks, Spool(tmp_path / "spool", segment_bytes=segment), limit,
              low if low is not None else limit // 4)
    if registered:
        g.registered.set()
    return g


def all_records(g: Group):
    out, nxt = [], g.spool.first_available()
    while nxt <= g.spool.last_seq:
        batch = g.spool.read(nxt, 4 * MiB)
        out += batch
        nxt = batch[-1].sequence + 1
    return out


def replay_matches(tmp_path, g: Group, records) -> bool:
    for name, disk in g.disks.items():
        make_image(tmp_path / f"replay-{name}.img", disk.size)
    apply_records(records, {n: tmp_path / f"replay-{n}.img" for n in g.disks})
    return all(hashlib.sha256((tmp_path / f"replay-{n}.img").read_bytes()).digest()
               == hashlib.sha256(d.path.read_bytes()).digest() for n, d in g.disks.items())


def test_one_sequence_for_the_group_gap_free_monotonic_time(tmp_path):
    g = open_group(tmp_path, {"a": 4 * MiB, "b": 4 * MiB})
    g.write("a", 0, b"x" * (PIECE * 2 + 10))  # split into 3 records
    g.write("b", 4096, b"y" * 4096)
    g.trim("a", MiB, 8192)
    g.zeroes("b", 2 * MiB, 4096)
    recs = all_records(g)
    assert [r.sequence for r in recs] == list(range(1, 7))
    assert [r.volume for r in recs] == ["a", "a", "a", "b", "a", "b"]
    assert [r.kind for r in recs] == [Kind.DATA] * 4 + [Kind.TRIM, Kind.ZEROES]
    assert max(r.length for r in recs if r.kind == Kind.DATA) <= PIECE
    stamps = [r.timestamp_ns for r in recs]
    assert stamps == sorted(stamps)


def test_timestamps_never_decrease_even_if_the_clock_steps_back(tmp_path, monkeypatch):
    g = open_group(tmp_path, {"a": MiB})
    g.write("a", 0, b"1")
    first = all_records(g)[0].timestamp_ns
    monkeypatch.setattr("agent.group.time.time_ns", lambda: first - 10**12)
    g.write("a", 1, b"2")
    assert all_records(g)[1].timestamp_ns == first


def test_sequence_resumes_after_restart(tmp_path):
    g = open_group(tmp_path, {"a": MiB})
    g.write("a", 0, b"abc")
    g.bookmark("x", internal=True)
    g.close()
    g2 = open_group(tmp_path, {"a": MiB})
    g2.write("a", 10, b"def")
    assert [r.sequence for r in all_records(g2)] == [1, 2, 3]
    assert g2.state.bookmarks == ["x"]


def test_concurrent_writers_sequence_order_is_apply_order(tmp_path):
    g = open_group(tmp_path, {"a": 2 * MiB, "b": 2 * MiB})
    rng = random.Random(7)
    plans = [[(rng.choice("ab"), rng.randrange(0, 2 * MiB - 70000), rng.randrange(1, 70000), i)
              for i in range(150)] for _ in range(4)]

    def worker(plan):
        for vol, off, n, i in plan:
            if i % 17 == 0:
                g.trim(vol, off, n)
            else:
                g.write(vol, off, bytes([i % 256]) * n)

    threads = [threading.Thread(target=worker, args=(p,)) for p in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recs = all_records(g)
    assert [r.sequence for r in recs] == list(range(1, len(recs) + 1))
    assert replay_matches(tmp_path, g, recs)


def test_initial_sync_copies_data_and_sparse_regions_then_bookmarks(tmp_path):
    size = 6 * MiB
    path = tmp_path / "a.img"
    make_image(path, size)
    content = os.urandom(300_000)
    with open(path, "r+b") as fh:
        fh.seek(MiB)
        fh.write(content)
        fh.seek(3 * MiB)
        fh.write(bytes(PIECE))  # allocated but zero: must become ZEROES, not DATA
    g = open_group(tmp_path, {"a": size})
    syncer = Syncer(g, pace_bytes=1 << 30)
    g.write("a", 5 * MiB, b"w" * 5000)  # a write before/while syncing is fine
    syncer.run_until_idle()
    recs = all_records(g)
    assert recs[-1].kind == Kind.BOOKMARK and recs[-1].data() == INITIAL_SYNC_BOOKMARK.encode()
    assert g.state.initial_sync_complete
    data_bytes = sum(r.length for r in recs if r.kind == Kind.DATA)
    assert data_bytes <= 5000 + 3 * PIECE  # sparse parts travel as ZEROES
    assert replay_matches(tmp_path, g, recs)


def test_sync_waits_for_registration_and_paces(tmp_path):
    g = open_group(tmp_path, {"a": 2 * MiB}, registered=False)
    with open(g.disks["a"].path, "r+b") as fh:
        fh.write(os.urandom(2 * MiB))
    syncer = Syncer(g, pace_bytes=PIECE)
    assert syncer.run_until_idle() == 0  # not registered: nothing happens
    g.registered.set()
    assert syncer.run_until_idle() == 1  # one chunk, then the backlog holds it back
    for _ in range(20):  # the shipper acknowledging: each ack lets one more chunk through
        g.spool.ack(g.spool.last_seq)
        syncer.run_until_idle()
    assert g.state.initial_sync_complete
    assert g.spool.last_seq == 8 + 1  # eight 256 KiB chunks and the bookmark


def test_overflow_tracks_dirty_and_resync_restores_consistency(tmp_path):
    g = open_group(tmp_path, {"a": 4 * MiB}, limit=600_000, low=100_000, segment=200_000)
    syncer = Syncer(g, pace_bytes=1 << 30)
    syncer.run_until_idle()
    for i in range(4):
        g.write("a", i * PIECE, bytes([i + 1]) * PIECE)
    assert g.overflow and "spool_overflow" in g.alarms
    seq_at_overflow = g.spool.last_seq
    g.write("a", 3 * MiB + 5, b"late" * 1000)  # not spooled: only marked dirty
    g.trim("a", 0, 4096)
    assert g.spool.last_seq == seq_at_overflow
    assert len(g.dirty["a"]) == 3  # the 4th piece, the late write, the trim
    with pytest.raises(BookmarkError, match="resync"):
        g.bookmark("during-overflow")
    syncer.run_until_idle()  # spool not drained yet: stays in overflow
    assert g.overflow
    shipped = all_records(g)
    g.spool.ack(g.spool.last_seq)  # the shipper drained it
    syncer.run_until_idle()
    assert not g.overflow and not g.state.needs_resync and "spool_overflow" not in g.alarms
    recs = shipped + all_records(g)[:]
    recs = [r for i, r in enumerate(recs) if r.sequence not in {x.sequence for x in recs[:i]}]
    assert recs[-1].kind == Kind.BOOKMARK and recs[-1].data().startswith(b"dialback.resync-complete")
    assert replay_matches(tmp_path, g, recs)
    g.bookmark("after-resync")


def test_restart_during_overflow_resyncs_everything(tmp_path):
    g = open_group(tmp_path, {"a": 2 * MiB}, limit=300_000)
    Syncer(g, 1 << 30).run_until_idle()
    for i in range(3):
        g.write("a", i * PIECE, b"z" * PIECE)
    assert g.overflow
    g.close()
    g2 = open_group(tmp_path, {"a": 2 * MiB}, limit=300_000)
    assert len(g2.dirty["a"]) == 8 and g2.state.needs_resync


def test_bookmark_rules(tmp_path):
    g = open_group(tmp_path, {"a": MiB})
    with pytest.raises(BookmarkError, match="initial sync"):
        g.bookmark("early")
    Syncer(g, 1 << 30).run_until_idle()
    seq, ts = g.bookmark("nightly")
    assert seq == g.spool.last_seq and ts > 0
    with pytest.raises(BookmarkError, match="already has"):
        g.bookmark("nightly")
    with pytest.raises(BookmarkError, match="reserved"):
        g.bookmark("dialback.mine")
    with pytest.raises(BookmarkError, match="printable"):
        g.bookmark("")


def _bookmarks(records):
    from shared.journal import bookmarks_of
    return bookmarks_of(records)


def test_resync_window_is_marked_before_any_resync_chunk_or_new_write(tmp_path):
    from shared.consistency import windows
    g = open_group(tmp_path, {"a": 4 * MiB}, limit=600_000, low=100_000, segment=200_000)
    syncer = Syncer(g, pace_bytes=1 << 30)
    syncer.run_until_idle()
    for i in range(4):
        g.write("a", i * PIECE, bytes([i + 1]) * PIECE)
    assert g.overflow
    last_in_order = all_records(g)[-1]
    g.write("a", 3 * MiB, b"lost" * 1000)  # not spooled
    g.spool.ack(g.spool.last_seq)
    assert g.leave_overflow_if_drained()
    g.write("a", 2 * MiB, b"new" * 1000)  # spooled again, after the marker
    syncer.run_until_idle()
    recs = [r for r in all_records(g) if r.sequence > last_in_order.sequence]
    start = recs[0]
    assert start.sequence == last_in_order.sequence + 1 and start.kind == Kind.BOOKMARK
    assert start.data() == f"dialback.resync-start.{start.sequence}".encode()
    assert start.timestamp_ns == last_in_order.timestamp_ns  # the window starts in time where order ended
    (w,) = [w for w in windows(_bookmarks(recs)) if w.kind == "resync"]
    assert w.start.sequence == start.sequence and w.end.sequence == recs[-1].sequence
    assert not g.state.resync_marked and not g.state.needs_resync


def test_overflow_again_during_the_resync_keeps_one_start_marker(tmp_path):
    g = open_group(tmp_path, {"a": 4 * MiB}, limit=600_000, low=100_000, segment=200_000)
    Syncer(g, pace_bytes=1 << 30).run_until_idle()
    seen = {}

    def ship():  # what the shipper would have sent, then its acknowledgement
        seen.update((r.sequence, r) for r in all_records(g))
        g.spool.ack(g.spool.last_seq)

    for i in range(4):
        g.write("a", i * PIECE, bytes([i + 1]) * PIECE)
    ship()
    assert g.leave_overflow_if_drained()
    for i in range(4):  # overflow again before the resync ran
        g.write("a", i * PIECE, bytes([i + 9]) * PIECE)
    assert g.overflow
    ship()
    Syncer(g, pace_bytes=1 << 30).run_until_idle()
    seen.update((r.sequence, r) for r in all_records(g))
    names = [b.name for b in _bookmarks([seen[s] for s in sorted(seen)])]
    assert len([n for n in names if n.startswith("dialback.resync-start.")]) == 1
    assert names[-1].startswith("dialback.resync-complete.")


def test_restart_during_overflow_marks_the_window_before_the_first_new_write(tmp_path):
    g = open_group(tmp_path, {"a": 2 * MiB}, limit=300_000)
    Syncer(g, 1 << 30).run_until_idle()
    for i in range(3):
        g.write("a", i * PIECE, b"z" * PIECE)
    assert g.overflow
    last = g.spool.last_seq
    g.close()
    g2 = open_group(tmp_path, {"a": 2 * MiB}, limit=1 << 30)
    g2.write("a", 4096, b"after restart" * 100)
    recs = [r for r in all_records(g2) if r.sequence > last]
    assert recs[0].kind == Kind.BOOKMARK and recs[0].data().startswith(b"dialback.resync-start.")
    assert recs[1].kind == Kind.DATA
    g2.close()
    g3 = open_group(tmp_path, {"a": 2 * MiB}, limit=1 << 30)  # a second restart: the window is already open
    assert g3.spool.last_seq == recs[-1].sequence
    Syncer(g3, 1 << 30).run_until_idle()
    names = [b.name for b in _bookmarks(all_records(g3))]
    assert len([n for n in names if n.startswith("dialback.resync-start.")]) == 1
    assert names[-1].startswith("dialback.resync-complete.")


def test_begin_resync_of_every_volume_marks_the_window(tmp_path):
    """The entry point for resyncs started for another reason than an overflow (e.g. records lost)."""
    g = open_group(tmp_path, {"a": MiB, "b": MiB})
    Syncer(g, 1 << 30).run_until_idle()
    last = g.spool.last_seq
    assert g.begin_resync(mark_all=True)
    assert len(g.dirty["a"]) == 4 and len(g.dirty["b"]) == 4 and g.state.needs_resync
    Syncer(g, 1 << 30).run_until_idle()
    recs = [r for r in all_records(g) if r.sequence > last]
    assert recs[0].data().startswith(b"dialback.resync-start.")
    assert recs[-1].data().startswith(b"dialback.resync-complete.") and len(recs) == 10
    assert replay_matches(tmp_path, g, all_records(g))


def test_initial_sync_bookmark_is_not_spooled_during_an_overflow(tmp_path):
    """The syncer checks for overflow, then bookmarks: a write between the two must not make it a lie."""
    g = open_group(tmp_path, {"a": MiB}, limit=300_000)
    for i in range(2):
        g.write("a", i * PIECE, b"q" * PIECE)
    assert g.overflow
    last = g.spool.last_seq
    with pytest.raises(BookmarkError, match="overflowed"):
        g.bookmark(INITIAL_SYNC_BOOKMARK, internal=True)
    assert g.spool.last_seq == last and not g.state.initial_sync_complete
