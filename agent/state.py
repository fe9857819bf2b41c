"""The spool's small durable state file (JSON, replaced atomically).

Holds ``acked_through`` (highest sequence ingest acknowledged), the last
sequence/timestamp handed out (so numbering survives an emptied spool) and
the group's lifecycle flags (registered, initial sync done, overflow) plus
the bookmark names already used, and the spool's incarnation (a random id
made when the spool is created, shared.incarnation) with the epoch ingest
last registered it under.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agent.errors import SpoolError


@dataclass
class GroupState:
    acked_through: int = 0
    last_seq: int = 0
    last_ts: int = 0
    registered: bool = False
    initial_sync_complete: bool = False
    # True from the moment the spool overflowed until the resync finished; a
    # restart in between cannot know the dirty regions, so it resyncs all.
    needs_resync: bool = False
    # True once the resync's start marker is spooled (shared/consistency.py), until the resync
    # completes: a restart in between must not mark the start again later than where it was.
    resync_marked: bool = False
    bookmarks: list[str] = field(default_factory=list)
    # Which spool this is: sent at registration and with every batch, so an emptied spool
    # (numbering from 1 again) is never taken for the one ingest knows. "" until Spool sets it.
    incarnation: str = ""
    epoch: int = 0  # ingest's epoch for this incarnation at the last registration (0: none yet)


def load(path: Path) -> GroupState:
    if not path.exists():
        return GroupState()
    try:
        raw = json.loads(path.read_text())
        return GroupState(**{k: v for k, v in raw.items() if k in GroupState.__dataclass_fields__})
    except (ValueError, TypeError) as err:
        raise SpoolError(f"spool state file {path} is unreadable ({err}); restore it from a backup "
                         "or move the spool directory away to start protection afresh") from err


def save(path: Path, state: GroupState) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        json.dump(asdict(state), fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
