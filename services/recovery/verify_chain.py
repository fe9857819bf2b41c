"""Verify's consistency checks across objects: the timeline chain, the journal's start, retained points.

``run`` is verify's run state (:class:`services.recovery.verify._Run`): it
gives ``store``, ``bucket`` and ``problem(key, what, detail)``.
"""

from __future__ import annotations

from datetime import datetime, timezone

from shared import bases as B
from shared import keys
from shared.journal import TimelineEntry
from shared.objectstore import ObjectStoreError
from services.retention.policy import PolicyError, read_policy


def check_chain(run, group: str, entries: list[TimelineEntry], bases: list[B.Base], now_ns: int) -> None:
    if not entries:
        if not bases:
            run.problem(keys.timeline_prefix(group), "timeline gap", "the group has neither journal nor bases")
        return
    ordered = sorted(entries, key=lambda e: (e.first_seq, -e.last_seq))
    first = ordered[0]
    # GC keeps the segment holding the floor base's sequence: a base must stand inside the first segment.
    if first.first_seq > 1 and not any(first.first_seq - 1 <= b.sequence <= first.last_seq for b in bases):
        run.problem(keys.bases_prefix(group), "missing",
                    f"the journal starts at sequence {first.first_seq} but no base stands at sequences "
                    f"{first.first_seq - 1}-{first.last_seq}: the journal cannot be replayed (base deleted?)")
    covered = first.first_seq - 1
    for e in ordered:
        if e.first_seq > covered + 1:
            run.problem(keys.timeline_key(group, covered + 1, e.first_seq - 1), "timeline gap",
                        f"no timeline entry holds sequences {covered + 1}-{e.first_seq - 1}")
        covered = max(covered, e.last_seq)
    for b in bases:
        if b.sequence > covered:
            run.problem(b.key, "range mismatch", f"base at sequence {b.sequence} is past the journal's latest "
                                                 f"point {covered}")
    _check_retained(run, group, first.first_ts, bases, now_ns)


def _check_retained(run, group: str, journal_ts: int, bases: list[B.Base], now_ns: int) -> None:
    """Every policy point older than the journal and not older than the oldest base must have a base."""
    if not bases:
        return
    try:
        policy = read_policy(run.store, run.bucket, group)
    except (PolicyError, ObjectStoreError) as err:
        run.problem(keys.policy_key(group), "malformed", str(err))
        return
    held = {p for b in bases for p in b.points_ns}
    oldest = bases[0].timestamp_ns
    for h in policy.retained_points(now_ns):
        if oldest <= h < journal_ts and h not in held:
            run.problem(keys.bases_prefix(group), "missing",
                        f"retained point {_iso(h)} ({h} ns) has no base and the journal no longer covers it "
                        "(base deleted?)")


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, timezone.utc).isoformat(timespec="seconds")
