"""A group whose journal has a sequence gap: the durable mark and its control events.

Retention writes ``groups/<group>/broken.json`` (shared.keys.broken_key) and a
``GroupBroken`` event when a writes message skips sequences it does not hold,
and deletes the mark and sends ``GroupRepaired`` once the missing sequences
are durable. Ingest folds both events into its group state (it rewinds
``acked_through`` to ``expected - 1`` so the agent resends); recovery shows
the mark in a group's points.

Events go to the tenant's compacted control topic under their own key
``broken/<group>`` (not ``group/<group>``, whose latest event must carry the
whole group state): after compaction the latest of the two survives, which
is the group's current broken/repaired state.

Event bodies::

    {"type": "GroupBroken", "group": g, "expected": N, "seen": M, "time": iso}
    {"type": "GroupRepaired", "group": g, "expected": N, "through": T, "time": iso}

``expected`` is the first sequence the journal lacks, ``seen`` the first
sequence of the message that revealed the gap, ``through`` the last durable
sequence when the gap was closed.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from shared import keys
from shared.objectstore import ObjectNotFound, ObjectStore

GROUP_BROKEN = "GroupBroken"
GROUP_REPAIRED = "GroupRepaired"


def event_key(group: str) -> bytes:
    return f"broken/{group}".encode()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def broken_event(group: str, expected: int, seen: int) -> dict:
    return {"type": GROUP_BROKEN, "group": group, "expected": expected, "seen": seen, "time": _now()}


def repaired_event(group: str, expected: int, through: int) -> dict:
    return {"type": GROUP_REPAIRED, "group": group, "expected": expected, "through": through, "time": _now()}


def encode_event(event: dict) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def write_mark(store: ObjectStore, bucket: str, group: str, expected: int, seen: int) -> None:
    """Record durably that ``group`` lacks sequence ``expected`` (idempotent)."""
    store.put(bucket, keys.broken_key(group), encode_event(broken_event(group, expected, seen)))


def read_mark(store: ObjectStore, bucket: str, group: str) -> dict | None:
    """The mark (``expected``, ``seen``, ``time``) or None when the group's journal has no gap.

    A damaged mark still means broken: it is returned with ``expected`` None.
    """
    try:
        raw = store.get(bucket, keys.broken_key(group))
    except ObjectNotFound:
        return None
    try:
        doc = json.loads(raw)
        return {"expected": int(doc["expected"]), "seen": int(doc.get("seen", 0)), "since": doc.get("time")}
    except (ValueError, KeyError, TypeError, AttributeError):
        return {"expected": None, "seen": None, "since": None}


def clear_mark(store: ObjectStore, bucket: str, group: str) -> None:
    try:
        store.delete(bucket, keys.broken_key(group))
    except ObjectNotFound:
        pass
