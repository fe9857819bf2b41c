"""Ingest's state per tenant: registered groups and what has been acked.

The state is a fold over the tenant's control log. Every event carries the
whole state of its group (volumes included) because the control topic is
compacted per key ``group/<group>``: after compaction only a group's latest
event is guaranteed to survive, and that one alone must rebuild the group.

Retention's ``GroupBroken`` / ``GroupRepaired`` events (shared.broken, key
``broken/<group>``) are folded in too: a broken group's ``acked_through``
goes back to ``expected - 1`` so the agent's next batch is answered 409
{"expected": N} and it resends (docs/ingest.md "Broken groups"). While a
group is broken, a ``BatchAcked`` that does not carry ``"broken": N`` was
decided before ingest saw the break and does not move ``acked_through``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from shared.broken import GROUP_BROKEN, GROUP_REPAIRED

log = logging.getLogger(__name__)

GROUP_REGISTERED = "GroupRegistered"
BATCH_ACKED = "BatchAcked"
GROUP_REPROTECTED = "GroupReprotected"


@dataclass(frozen=True)
class GroupState:
    group: str
    volumes: dict[str, int]  # volume id -> size in bytes, in registration order
    acked_through: int = 0
    last_timestamp_ns: int = 0
    broken: int | None = None  # retention lacks this sequence: resend from it (None: journal whole)
    # The spool the group's sequences come from (None: registered without one, by a tool or
    # before incarnations existed), the epoch it protects (0 without an incarnation, 1 for the
    # first spool, +1 per re-protection) and the first sequence of that epoch.
    incarnation: str | None = None
    epoch: int = 0
    epoch_first_seq: int = 1

    def volumes_list(self) -> list[dict]:
        return [{"volume": v, "size": s} for v, s in self.volumes.items()]

    def acked(self, last_seq: int, last_ts: int) -> "GroupState":
        return replace(self, acked_through=last_seq, last_timestamp_ns=max(self.last_timestamp_ns, last_ts))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _epoch(state: GroupState) -> dict:
    return {"incarnation": state.incarnation, "epoch": state.epoch, "epoch_first_seq": state.epoch_first_seq}


def registered_event(state: GroupState) -> dict:
    return {"type": GROUP_REGISTERED, "group": state.group, "volumes": state.volumes_list(), **_epoch(state),
            "time": _now()}


def reprotected_event(state: GroupState, previous: str | None) -> dict:
    """A new epoch: the group is protected by the spool ``state.incarnation`` from
    ``state.epoch_first_seq`` on (an initial sync first), no longer by ``previous``."""
    return {"type": GROUP_REPROTECTED, "group": state.group, "volumes": state.volumes_list(),
            "acked_through": state.acked_through, "last_timestamp_ns": state.last_timestamp_ns,
            **_epoch(state), "previous_incarnation": previous, "time": _now()}


def acked_event(state: GroupState) -> dict:
    return {
        "type": BATCH_ACKED,
        "group": state.group,
        "acked_through": state.acked_through,
        # Not required by data-path.md; carried so one surviving event rebuilds the group.
        "volumes": state.volumes_list(),
        "last_timestamp_ns": state.last_timestamp_ns,
        **_epoch(state),
        "time": _now(),
        **({"broken": state.broken} if state.broken is not None else {}),
    }


def _epoch_of(event: dict, old: GroupState | None) -> tuple[str | None, int, int]:
    """(incarnation, epoch, epoch_first_seq) after ``event``: its own when it carries them and
    does not go back to an older epoch, else the group's so far (events from before incarnations)."""
    kept = (old.incarnation, old.epoch, old.epoch_first_seq) if old else (None, 0, 1)
    if "epoch" not in event:
        return kept
    inc, epoch, first = event["incarnation"], int(event["epoch"]), int(event["epoch_first_seq"])
    if inc is not None and not isinstance(inc, str):
        raise TypeError(f"incarnation {inc!r} is not a string")
    return kept if epoch < kept[1] else (inc, epoch, first)


@dataclass
class TenantState:
    groups: dict[str, GroupState] = field(default_factory=dict)
    volume_owner: dict[str, str] = field(default_factory=dict)

    def put(self, state: GroupState) -> None:
        self.groups[state.group] = state
        for v in state.volumes:
            self.volume_owner[v] = state.group

    def apply(self, event: dict) -> None:
        """Fold one control event in; unknown or damaged events are logged and skipped."""
        try:
            kind, group = event["type"], event["group"]
            old = self.groups.get(group)
            if "volumes" in event:
                volumes = {str(v["volume"]): int(v["size"]) for v in event["volumes"]}
            elif old is not None:
                volumes = old.volumes
            elif kind in (GROUP_BROKEN, GROUP_REPAIRED):
                return  # retention saw a group ingest does not know (purged): nothing to rewind
            else:
                raise KeyError("volumes")
            acked = old.acked_through if old else 0
            last_ts = old.last_timestamp_ns if old else 0
            broken = old.broken if old else None
            incarnation, epoch, epoch_first = _epoch_of(event, old)
            if kind == BATCH_ACKED:
                if broken is None or event.get("broken") == broken:
                    acked = max(acked, int(event["acked_through"]))
                    last_ts = max(last_ts, int(event.get("last_timestamp_ns", 0)))
            elif kind == GROUP_REPROTECTED:
                acked = max(acked, int(event["acked_through"]))
                last_ts = max(last_ts, int(event.get("last_timestamp_ns", 0)))
            elif kind == GROUP_BROKEN:
                broken = int(event["expected"])
                if acked >= broken:
                    # The resend repeats records already acknowledged once, with their old timestamps.
                    acked, last_ts = broken - 1, 0
            elif kind == GROUP_REPAIRED:
                if broken is not None and int(event["expected"]) == broken:
                    broken = None
            elif kind != GROUP_REGISTERED:
                log.warning("control event of unknown type %r for group %r ignored", kind, group)
                return
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            log.error("damaged control event %r ignored: %r", event, err)
            return
        self.put(GroupState(group, volumes, acked, last_ts, broken=broken, incarnation=incarnation, epoch=epoch,
                            epoch_first_seq=epoch_first))

    @classmethod
    def replay(cls, events: list[dict]) -> "TenantState":
        st = cls()
        for ev in events:
            st.apply(ev)
        return st
