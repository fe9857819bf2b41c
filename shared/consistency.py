"""Inconsistency windows: the stretches of a group's journal that match no real disk.

The agent marks them with internal bookmarks (agent/group.py) that travel in
the journal like any record:

* the journal starts inside the *initial sync* window: until
  ``dialback.initial-sync-complete`` the sync copies regions while writes
  continue, so no point before that bookmark existed on the disk;
* a spool overflow drops records (writes are only tracked as dirty regions),
  and the resync copies those regions afterwards, out of write order. The
  agent appends ``dialback.resync-start.<seq>`` as the first record after the
  overflow, stamped with the timestamp of the last record spooled in order,
  and ``dialback.resync-complete.<seq>`` once every dirty region is copied.

A window is the open interval between its start marker (a consistent point:
it changes no data, so it holds exactly the disk of the last in-order record)
and its end marker (consistent: from there on the journal equals the disk).
A point *strictly* inside is refused; a point exactly at either end is real.
In time, a window spans (start.timestamp_ns, end.timestamp_ns) the same way.

Rules for markers that do not pair up (all conservative: when in doubt, a
point is refused, never served as real):

* an end marker with no open window (its start was removed by GC, or the
  journal starts inside the initial sync, or the journal predates start
  markers) closes a window that began right after the previous consistent
  marker - the previous end marker or a user bookmark (the agent refuses user
  bookmarks from an overflow until its resync completes, so each one is a
  consistent point) - or before the first retained record when there is none;
* a start marker inside an open window (the spool overflowed again during a
  resync, or the agent restarted) changes nothing: the window still began at
  the first one;
* a start marker never closed leaves the window open: the latest consistent
  point is its start;
* windows before the initial-sync bookmark (an overflow during the initial
  sync) fold into the initial-sync window, which lasts until such a resync
  completes if it was still under way.

Used by recovery (planner, points listing), instant-access exports and burst,
so all of them refuse the same points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from shared.journal import INITIAL_SYNC_BOOKMARK, Bookmark

RESERVED_PREFIX = "dialback."
RESYNC_START_PREFIX = "dialback.resync-start."
RESYNC_COMPLETE_PREFIX = "dialback.resync-complete."


def resync_start_name(sequence: int) -> str:
    return f"{RESYNC_START_PREFIX}{sequence}"


def resync_complete_name(sequence: int) -> str:
    return f"{RESYNC_COMPLETE_PREFIX}{sequence}"


@dataclass(frozen=True)
class Window:
    """Points strictly between ``start`` and ``end`` are not consistent.

    ``start`` None: the window began before the first retained record.
    ``end`` None: still open (the resync has not finished yet).
    """

    kind: str  # "initial-sync" or "resync"
    start: Bookmark | None
    end: Bookmark | None

    def holds_sequence(self, sequence: int) -> bool:
        return ((self.start is None or sequence > self.start.sequence)
                and (self.end is None or sequence < self.end.sequence))

    def holds_time(self, timestamp_ns: int) -> bool:
        return ((self.start is None or timestamp_ns > self.start.timestamp_ns)
                and (self.end is None or timestamp_ns < self.end.timestamp_ns))

    def to_dict(self) -> dict:
        def edge(b: Bookmark | None) -> dict | None:
            return None if b is None else {"sequence": b.sequence, "timestamp_ns": b.timestamp_ns}

        return {"kind": self.kind, "consistent_before": edge(self.start), "consistent_after": edge(self.end),
                "open": self.end is None}


def windows(bookmarks: Iterable[Bookmark]) -> list[Window]:
    """The windows the markers among ``bookmarks`` describe, in sequence order."""
    out: list[Window] = []
    open_start: Bookmark | None = None
    is_open, kind = False, "resync"
    last_consistent: Bookmark | None = None
    for b in sorted(bookmarks, key=lambda b: b.sequence):
        if b.name == INITIAL_SYNC_BOOKMARK:
            # Nothing before the initial sync completed was consistent: earlier windows fold into it.
            out, last_consistent = [], None
            if is_open:  # a resync still under way: the initial-sync window lasts until it completes
                open_start, kind = None, "initial-sync"
            else:
                out.append(Window("initial-sync", None, b))
                last_consistent = b
        elif b.name.startswith(RESYNC_START_PREFIX):
            if not is_open:
                open_start, is_open, kind = b, True, "resync"
        elif b.name.startswith(RESYNC_COMPLETE_PREFIX):
            out.append(Window(kind, open_start if is_open else last_consistent, b))
            open_start, is_open, kind, last_consistent = None, False, "resync", b
        elif not b.name.startswith(RESERVED_PREFIX) and not is_open:
            last_consistent = b
    if is_open:
        out.append(Window(kind, open_start, None))
    return out


def window_at_sequence(wins: Iterable[Window], sequence: int) -> Window | None:
    return next((w for w in wins if w.holds_sequence(sequence)), None)


def window_at_time(wins: Iterable[Window], timestamp_ns: int) -> Window | None:
    return next((w for w in wins if w.holds_time(timestamp_ns)), None)


def latest_consistent(wins: Iterable[Window], latest: Bookmark | None) -> Bookmark | None:
    """The newest consistent point at or before ``latest`` (a retained record): its window's start if inside one."""
    if latest is None:
        return None
    w = window_at_sequence(wins, latest.sequence)
    return latest if w is None else w.start
