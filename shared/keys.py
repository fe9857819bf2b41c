"""The one module that decides object key names in a tenant's bucket.

Keys sort in time order (zero-padded sequence numbers), so listing a prefix
is recovery planning::

    groups/<group>/manifest.json                         the group's volumes and sizes
    groups/<group>/journal/<first:020d>-<last:020d>.seg  journal segment (records first..last)
    groups/<group>/timeline/<first:020d>-<last:020d>.json timeline entry for that segment
    groups/<group>/bases/<seq:020d>.json                 base image (synthetic full) at sequence seq
    groups/<group>/policy.json                           the group's retention policy
    groups/<group>/leases/<id>.json                      a reader's lease (GC keeps what it needs)
    groups/<group>/broken.json                           present while the journal has a sequence gap
    chunks/<id[:2]>/<id>                                 tenant-wide chunk, id = SHA-256 of its plaintext
"""

from __future__ import annotations

SEQ_WIDTH = 20


def group_prefix(group: str) -> str:
    return f"groups/{group}/"


def manifest_key(group: str) -> str:
    return f"groups/{group}/manifest.json"


def journal_prefix(group: str) -> str:
    return f"groups/{group}/journal/"


def timeline_prefix(group: str) -> str:
    return f"groups/{group}/timeline/"


def _range(first: int, last: int) -> str:
    return f"{first:0{SEQ_WIDTH}d}-{last:0{SEQ_WIDTH}d}"


def segment_key(group: str, first: int, last: int) -> str:
    return f"{journal_prefix(group)}{_range(first, last)}.seg"


def timeline_key(group: str, first: int, last: int) -> str:
    return f"{timeline_prefix(group)}{_range(first, last)}.json"


def parse_range(key: str) -> tuple[int, int]:
    """(first, last) sequence from a segment or timeline key."""
    name = key.rsplit("/", 1)[-1].split(".", 1)[0]
    first, last = name.split("-")
    return int(first), int(last)


def bases_prefix(group: str) -> str:
    return f"groups/{group}/bases/"


def base_key(group: str, sequence: int) -> str:
    return f"{bases_prefix(group)}{sequence:0{SEQ_WIDTH}d}.json"


def parse_base_key(key: str) -> int:
    """The sequence of a base from its key."""
    return int(key.rsplit("/", 1)[-1].split(".", 1)[0])


CHUNKS_PREFIX = "chunks/"


def chunk_key(chunk_id: str) -> str:
    return f"{CHUNKS_PREFIX}{chunk_id[:2]}/{chunk_id}"


def broken_key(group: str) -> str:
    return f"groups/{group}/broken.json"


def policy_key(group: str) -> str:
    return f"groups/{group}/policy.json"


def leases_prefix(group: str) -> str:
    return f"groups/{group}/leases/"


def lease_key(group: str, lease_id: str) -> str:
    return f"{leases_prefix(group)}{lease_id}.json"
