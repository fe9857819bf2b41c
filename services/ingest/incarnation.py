"""Which spool may write a group's journal: pure decisions on incarnations and epochs.

A group is protected by one spool at a time, named by its incarnation
(shared.incarnation). Registration with the same incarnation is idempotent; a
group registered without one (before incarnations, or by a tool) adopts the
first one it sees. Any other incarnation is refused (409, reason
"incarnation") unless the registration asks for ``reprotect``: that starts a
new epoch whose sequences begin at ``acked_through + 1`` (the journal stays
one gap-free sequence; the agent renumbers and syncs its disks again first).
Batches are refused unless they carry the group's incarnation.
"""

from __future__ import annotations

from dataclasses import replace

from services.ingest.errors import IncarnationConflict, InvalidRegistration
from services.ingest.state import GroupState, registered_event, reprotected_event
from shared.incarnation import HEADER, valid_incarnation


def parse_registration(incarnation: object, reprotect: object) -> tuple[str | None, bool]:
    """The registration's (incarnation or None, reprotect), or InvalidRegistration."""
    if incarnation is not None and not valid_incarnation(incarnation):
        raise InvalidRegistration(f'"incarnation" must be 16-64 lowercase hex digits (the spool\'s id), '
                                  f"got {incarnation!r}")
    if not isinstance(reprotect, bool):
        raise InvalidRegistration(f'"reprotect" must be true or false, got {reprotect!r}')
    if reprotect and incarnation is None:
        raise InvalidRegistration('"reprotect" needs the "incarnation" of the spool that takes the group over')
    return incarnation, reprotect


def _refusal(gs: GroupState, what: str) -> IncarnationConflict:
    return IncarnationConflict(
        f"{what}, but group {gs.group!r} is protected by another spool (epoch {gs.epoch}, acknowledged "
        f"through sequence {gs.acked_through}). The spool was emptied or the agent reinstalled: its sequences "
        "would be taken for ones ingest already holds, so nothing of it is accepted. If the old spool is gone "
        "for good, re-protect the group: restart the agent with `dialback protect ... --reprotect` "
        "(DIALBACK_AGENT_REPROTECT=true); it copies its disks again as sequences "
        f"{gs.acked_through + 1} on", epoch=gs.epoch, acked_through=gs.acked_through)


def on_register(gs: GroupState, incarnation: str | None, reprotect: bool) -> tuple[GroupState, dict] | None:
    """What registering ``incarnation`` again does to the known group ``gs``: None (nothing
    changes), (new state, control event) to adopt it or start a new epoch, or IncarnationConflict."""
    if incarnation is None or incarnation == gs.incarnation:
        return None
    if gs.incarnation is None:  # registered before incarnations: the first spool to come adopts it
        new = replace(gs, incarnation=incarnation, epoch=max(gs.epoch, 1))
        return new, registered_event(new)
    if not reprotect:
        raise _refusal(gs, f"this agent's spool ({incarnation}) is not the group's")
    new = replace(gs, incarnation=incarnation, epoch=gs.epoch + 1, epoch_first_seq=gs.acked_through + 1)
    return new, reprotected_event(new, gs.incarnation)


def check_batch(gs: GroupState, incarnation: str | None) -> None:
    """Refuse (IncarnationConflict) a batch that does not come from the spool protecting ``gs``."""
    if incarnation == gs.incarnation:
        return
    if gs.incarnation is None:
        raise IncarnationConflict(
            f"group {gs.group!r} was registered without a spool incarnation but this batch carries "
            f"{HEADER} {incarnation!r}; register the group again (PUT /v1/groups/{gs.group}) with it first",
            epoch=gs.epoch, acked_through=gs.acked_through)
    if incarnation is None:
        raise _refusal(gs, f"this batch carries no {HEADER} header")
    raise _refusal(gs, f"this batch comes from spool {incarnation}")
