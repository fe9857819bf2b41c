"""The one module that decides object key names in a tenant's bucket.

Keys sort in time order (zero-padded sequence numbers), so listing a prefix
is recovery planning::

    groups/<group>/manifest.json                         the group's volumes and sizes
    groups/<group>/journal/<first:020d>-<last:020d>.seg  journal segment (records first..last)
    groups/<group>/timeline/<first:020d>-<last:020d>.json timeline entry for that segment
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
