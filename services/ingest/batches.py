"""Deciding what to do with one posted batch, before any I/O.

:func:`plan_batch` is pure: it decodes and checks the batch against the
group's state and returns what to produce (possibly nothing). Checks, in
order: frame decoding and CRCs, non-empty, every record's volume in the group
and inside the volume, zstd payloads decompress, sequences ascending and
gap-free, timestamps not decreasing, continuity with ``acked_through``.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.ingest.errors import BadSequence, ForeignVolume, MalformedBatch, SequenceGap
from services.ingest.state import GroupState
from shared.bodies import BodyError, split_body
from shared.frames import Codec, FrameError, Kind, Record, decode_batch, encode_batch


@dataclass(frozen=True)
class Plan:
    """``data`` is None when every record was already acknowledged."""

    data: bytes | None
    first_seq: int
    last_seq: int
    records: int  # records to produce
    last_timestamp_ns: int
    payload_bytes: int = 0  # uncompressed DATA bytes of the records to produce (ingest.bytes)


def _check_records(recs: list[Record], group: GroupState) -> None:
    n = len(recs)
    for rec in recs:
        size = group.volumes.get(rec.volume)
        if size is None:
            raise ForeignVolume(
                f"record seq {rec.sequence} is for volume {rec.volume!r}, which is not in group "
                f"{group.group!r} (volumes: {', '.join(group.volumes)}); register it or fix the agent",
                records=n,
            )
        if rec.kind != Kind.BOOKMARK and rec.offset + rec.length > size:
            raise ForeignVolume(
                f"record seq {rec.sequence} writes {rec.offset}..{rec.offset + rec.length} past the end "
                f"of volume {rec.volume!r} ({size} bytes)",
                records=n,
            )
        if rec.codec == Codec.ZSTD:
            try:
                rec.data()
            except FrameError as err:
                raise MalformedBatch(str(err), records=n) from err
    prev = recs[0]
    if prev.sequence < 1:
        raise BadSequence(f"sequences start at 1; record 0 has sequence {prev.sequence}", records=n)
    for i, rec in enumerate(recs[1:], 1):
        if rec.sequence != prev.sequence + 1:
            raise BadSequence(
                f"record {i} has sequence {rec.sequence} after {prev.sequence}; records in a batch "
                "must be ascending and gap-free",
                records=n,
            )
        if rec.timestamp_ns < prev.timestamp_ns:
            raise BadSequence(f"record seq {rec.sequence}: timestamp goes backwards", records=n)
        prev = rec


def plan_batch(body: bytes, group: GroupState, sealed_range: tuple[int, int] | None = None) -> Plan:
    """``sealed_range``: the (first, last) a sealed envelope authenticated; the batch must match it."""
    return plan_records(_decode(body, "batch"), body, group, sealed_range)


def _decode(body: bytes | memoryview, what: str) -> list[Record]:
    try:
        recs = decode_batch(body)
    except FrameError as err:
        raise MalformedBatch(f"{what} rejected: {err}") from err
    if not recs:
        raise MalformedBatch(f"{what} has no records; send at least one")
    return recs


def plan_records(recs: list[Record], body: bytes | memoryview, group: GroupState,
                 sealed_range: tuple[int, int] | None = None) -> Plan:
    """plan_batch for a batch already decoded into ``recs`` (non-empty)."""
    _check_records(recs, group)
    first, last = recs[0].sequence, recs[-1].sequence
    if sealed_range is not None and sealed_range != (first, last):
        raise MalformedBatch(f"sealed envelope names sequences {sealed_range[0]}-{sealed_range[1]} but the "
                             f"batch inside holds {first}-{last}; the agent must seal the range it sends",
                             records=len(recs))
    acked = group.acked_through
    if last <= acked:
        return Plan(None, first, last, 0, group.last_timestamp_ns)
    if first > acked + 1:
        raise SequenceGap(
            f"batch starts at sequence {first} but {acked} is the last acknowledged; "
            f"resend from sequence {acked + 1}",
            expected=acked + 1,
            records=len(recs),
        )
    new = recs[acked + 1 - first:]
    if new[0].timestamp_ns < group.last_timestamp_ns:
        raise BadSequence(
            f"record seq {new[0].sequence}: timestamp {new[0].timestamp_ns} is before the last acknowledged "
            f"one ({group.last_timestamp_ns}); timestamps must not decrease within a group",
            records=len(recs),
        )
    # Re-encode only when a prefix was already acked; otherwise Kafka gets the bytes as validated.
    data = bytes(body) if len(new) == len(recs) else encode_batch(new)
    payload = sum(r.length for r in new if r.kind == Kind.DATA)
    return Plan(data, new[0].sequence, last, len(new), new[-1].timestamp_ns, payload)


@dataclass(frozen=True)
class BodyPlan:
    """What to produce for one request body: one Plan per batch with new records, in order."""

    parts: tuple[Plan, ...]
    acked_through: int  # after this body is acknowledged
    last_timestamp_ns: int

    @property
    def duplicate(self) -> bool:
        return not self.parts

    @property
    def first_seq(self) -> int:
        return self.parts[0].first_seq

    @property
    def records(self) -> int:
        return sum(p.records for p in self.parts)

    @property
    def data_bytes(self) -> int:
        return sum(len(p.data) for p in self.parts)  # type: ignore[arg-type]

    @property
    def payload_bytes(self) -> int:
        return sum(p.payload_bytes for p in self.parts)


def plan_single(body: bytes, group: GroupState, sealed_range: tuple[int, int] | None = None) -> BodyPlan:
    """A one-batch body (``application/x-dialback-batch``) as a BodyPlan."""
    p = plan_batch(body, group, sealed_range)
    if p.data is None:
        return BodyPlan((), group.acked_through, group.last_timestamp_ns)
    return BodyPlan((p,), p.last_seq, max(group.last_timestamp_ns, p.last_timestamp_ns))


def plan_body(body: bytes, group: GroupState, sealed_range: tuple[int, int] | None = None) -> BodyPlan:
    """Plan a multi-batch body (shared.bodies): every batch checked, in order, before anything is produced.

    The first batch is held to the group's continuity like a single batch (duplicate, overlap,
    409 gap); later batches must continue the previous one exactly, else the whole body is
    refused with 400 (a 409 there would name an ``expected`` the agent could misread as
    acknowledged). A sealed envelope must name the whole body's first..last.
    """
    try:
        views = split_body(body)
    except BodyError as err:
        raise MalformedBatch(f"body rejected: {err}") from err
    state, parts, prev_last, first = group, [], None, None
    for i, view in enumerate(views):
        recs = _decode(view, f"batch {i} of the body")
        if prev_last is not None and recs[0].sequence != prev_last + 1:
            raise BadSequence(f"batch {i} of the body starts at sequence {recs[0].sequence} after "
                              f"{prev_last}; the batches of a body must continue one another gap-free",
                              records=len(recs))
        first = recs[0].sequence if first is None else first
        prev_last = recs[-1].sequence
        p = plan_records(recs, view, state)
        if p.data is not None:
            parts.append(p)
            state = state.acked(p.last_seq, p.last_timestamp_ns)
    if sealed_range is not None and sealed_range != (first, prev_last):
        raise MalformedBatch(f"sealed envelope names sequences {sealed_range[0]}-{sealed_range[1]} but the "
                             f"body holds {first}-{prev_last}; the agent must seal the range it sends")
    return BodyPlan(tuple(parts), state.acked_through, state.last_timestamp_ns)
