"""Refusing points inside an inconsistency window (shared/consistency.py), with the way out named.

The planner calls :func:`check` once it knows which sequence (and, for a
timestamp, which instant) a request names; a point inside a window raises
:class:`~services.recovery.errors.Inconsistent` (409) naming the nearest
consistent points before and after it that can be recovered.
"""

from __future__ import annotations

from typing import Sequence

from services.recovery.errors import Inconsistent
from shared.consistency import Window, window_at_sequence, window_at_time
from shared.journal import Bookmark

_WHY = {
    "initial-sync": "the initial sync was still copying the disk while it changed",
    "resync": "the spool overflowed and the resync copied dirty regions out of write order",
}


def check(group: str, wins: Sequence[Window], what: str, sequence: int | None = None,
          timestamp_ns: int | None = None, earliest_seq: int | None = None) -> None:
    """Raise Inconsistent when ``sequence`` or ``timestamp_ns`` lies strictly inside one of ``wins``.

    ``earliest_seq``: the start of the any-point window; a consistent point
    before it is not recoverable, so it is not offered.
    """
    w = None
    if timestamp_ns is not None:
        w = window_at_time(wins, timestamp_ns)
    if w is None and sequence is not None:
        w = window_at_sequence(wins, sequence)
    if w is None:
        return
    before = w.start if w.start is not None and (earliest_seq is None or w.start.sequence >= earliest_seq) \
        else None
    near = [f"before it: {_describe(before)}" if before else "before it: none that can be recovered",
            f"after it: {_describe(w.end)}" if w.end else
            "after it: none yet (the resync has not finished; retry once it has)"]
    span = (f"sequences {w.start.sequence + 1 if w.start else 'start'}-"
            f"{w.end.sequence - 1 if w.end else 'now'}")
    raise Inconsistent(
        f"{what} of group {group!r} is inside a {w.kind} window ({span}): {_WHY[w.kind]}, so no disk ever "
        f"held that state and it is not served. Nearest consistent points: {'; '.join(near)}. "
        f"List the windows with GET /v1/groups/{group}/points",
        _edge(before), _edge(w.end))


def _describe(b: Bookmark) -> str:
    return f"sequence {b.sequence} (timestamp {b.timestamp_ns} ns)"


def _edge(b: Bookmark | None) -> dict | None:
    return None if b is None else {"sequence": b.sequence, "timestamp_ns": b.timestamp_ns}
