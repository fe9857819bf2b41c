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
    try:
        recs = decode_batch(body)
    except FrameError as err:
        raise MalformedBatch(f"batch rejected: {err}") from err
    if not recs:
        raise MalformedBatch("batch has no records; send at least one")
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
