"""How burst names a recovery point, and its translation to the recovery planner's `At`.

    latest               the newest consistent point (resolved to `seq:N` once per operation)
    seq:N                journal sequence N of the group
    ts:NS | ts:ISO-8601  a moment (ns since the epoch, or e.g. 2026-12-01T18:00:00Z)
    bookmark:NAME | NAME a bookmark of the group

Parsing needs no I/O, so a malformed point is refused before anything else.
"""

from __future__ import annotations

from datetime import datetime, timezone

from services.burst.errors import UnknownPoint
from services.recovery.errors import BadRequest
from services.recovery.planner import At

LATEST = "latest"


def parse(point: str) -> At | None:
    """The planner's `At` for ``point``; None for "latest"."""
    if point == LATEST:
        return None
    kind, sep, value = point.partition(":")
    try:
        if not sep:
            return At.of(bookmark=point)
        if kind == "seq":
            return At.of(sequence=_int(value, point))
        if kind == "ts":
            return At.of(timestamp_ns=_timestamp_ns(value, point))
        if kind == "bookmark":
            return At.of(bookmark=value)
    except BadRequest as err:
        raise UnknownPoint(f"recovery point {point!r}: {err}") from err
    raise UnknownPoint(f"recovery point {point!r}: use latest, seq:N, ts:NS, ts:ISO-8601, bookmark:NAME or NAME")


def concrete(sequence: int) -> str:
    return f"seq:{sequence}"


def _int(text: str, point: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UnknownPoint(f"recovery point {point!r}: {text!r} is not a whole number") from None


def _timestamp_ns(text: str, point: str) -> int:
    if text.isdigit():
        return int(text)
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UnknownPoint(f"recovery point {point!r}: give ns since the epoch or an ISO-8601 time "
                           "such as 2026-12-01T18:00:00Z") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000
