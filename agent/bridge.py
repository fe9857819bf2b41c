"""Records ingest asks for that the spool no longer holds: a bridge, then a full resync.

When ingest (on retention's GroupBroken, or after losing state) expects a
sequence below the spool's first one, those writes are gone from this
agent. The journal must stay gap-free, so the shipper sends, for each
missing sequence, a record that changes nothing: the first is the bookmark
``dialback.resync-start.<first>`` (the start of a resync window), the rest
are zero-length ZEROES records. At the same time the group resyncs every
volume (Group.request_full_resync): every chunk is spooled again after the
spool's current records, then ``dialback.resync-complete.N`` is appended.
Points from the bridge up to that bookmark are not consistent; points after
it are the disk as it was, byte for byte, whatever the lost records held.
"""

from __future__ import annotations

from shared.frames import MAX_BATCH_BYTES, Kind, Record, encode_batch

RESYNC_START_PREFIX = "dialback.resync-start."


def bridge_batch(volume: str, first: int, end: int, start: int, timestamp_ns: int) -> tuple[bytes, int]:
    """One v1 batch of no-op records first..(at most) end; returns (batch, its last sequence).

    ``start``: the bridge's first sequence, which carries the resync-start bookmark.
    ``timestamp_ns``: the time every bridge record carries (that of the first spooled record
    after the bridge, so timestamps never decrease).
    """
    if not 1 <= first <= end or start > first:
        raise ValueError(f"bridge {first}..{end} (start {start}) is not a sequence range")
    per = MAX_BATCH_BYTES // (64 + len(volume.encode()))  # a ZEROES record's frame is ~40 bytes + volume id
    last = min(end, first + per - 1)
    recs = []
    for seq in range(first, last + 1):
        if seq == start:
            recs.append(Record(volume, seq, timestamp_ns, 0, 0, Kind.BOOKMARK,
                               payload=f"{RESYNC_START_PREFIX}{start}".encode()))
        else:
            recs.append(Record(volume, seq, timestamp_ns, 0, 0, Kind.ZEROES))
    return encode_batch(recs), last
