"""Build a group's journal in an object store through retention's writer, plus a reference model."""

from __future__ import annotations

from shared.frames import Kind, Record
from shared.journal import manifest_doc
from shared import keys
from services.retention.journaler import Journaler
from tests.services.retention.helpers import batches_of


def write_journal(store, tenant: str, group: str, volumes: dict[str, int], records: list[Record],
                  per_batch: int = 8, per_segment: int = 5, compress: bool = True) -> None:
    """Segments of ``per_segment`` batches each, written the way retention writes them."""
    j = Journaler(store, compress=compress, clock=lambda: 0.0)
    bucket = j.bucket(tenant)
    store.put(bucket, keys.manifest_key(group), manifest_doc(group, volumes))
    for i, b in enumerate(batches_of(records, per_batch)):
        j.offer(tenant, group, b, i)
        if (i + 1) % per_segment == 0:
            j.flush(tenant, group)
    j.flush(tenant, group)


def reference(volumes: dict[str, int], records: list[Record], through: int) -> dict[str, bytes]:
    disks = {v: bytearray(s) for v, s in volumes.items()}
    for r in records:
        if r.sequence > through:
            break
        if r.kind == Kind.DATA:
            disks[r.volume][r.offset: r.end] = r.data()
        elif r.kind in (Kind.ZEROES, Kind.TRIM):
            disks[r.volume][r.offset: r.end] = bytes(r.length)
    return {v: bytes(d) for v, d in disks.items()}
