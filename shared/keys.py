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
    recoveries/<anything>                                recovered images; the ONLY keys a client may name

Every other prefix holds state that Dialback owns and that other objects
depend on (a chunk is shared by every base that references it), so a key a
client chooses (a recovery's ``target.key``) must pass
:func:`check_client_key`: it can only land under ``recoveries/``.
"""

from __future__ import annotations

from shared.errors import InvalidName

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


def is_lease_key(key: str) -> bool:
    """True for ``groups/<group>/leases/<id>.json`` (rewritten by its holder's renewals, deleted by GC once expired)."""
    parts = key.split("/")
    return len(parts) == 4 and parts[0] == "groups" and parts[2] == "leases" and parts[3].endswith(".json")


RECOVERIES_PREFIX = "recoveries/"
# S3 allows 1024 bytes; leave room for the "<volume>.img" appended to a prefix.
MAX_CLIENT_KEY_BYTES = 900


def recovery_prefix(group: str, sequence: int) -> str:
    """Default key prefix of the images recovered from ``group`` at ``sequence``."""
    return f"{RECOVERIES_PREFIX}{group}/seq-{sequence:0{SEQ_WIDTH}d}/"


def check_client_key(key: str) -> str:
    """``key`` if a client may write an object there, else InvalidName saying what is allowed.

    Allowed: a key, or a key prefix ending in "/", under ``recoveries/``,
    at most MAX_CLIENT_KEY_BYTES bytes of UTF-8, with no empty, "." or ".."
    segment and no control character. Pure (no I/O), so callers check
    before any I/O.
    """
    problem = _client_key_problem(key)
    if problem:
        raise InvalidName(f"object key {key!r} is not allowed ({problem}): recovered images may only be "
                          f"written under '{RECOVERIES_PREFIX}', e.g. '{RECOVERIES_PREFIX}<name>/<volume>.img' "
                          f"or a prefix ending in '/'")
    return key


def _client_key_problem(key: object) -> str | None:
    if not isinstance(key, str) or not key:
        return "empty"
    if not key.startswith(RECOVERIES_PREFIX):
        return f"outside '{RECOVERIES_PREFIX}'"
    if len(key.encode()) > MAX_CLIENT_KEY_BYTES:
        return f"longer than {MAX_CLIENT_KEY_BYTES} bytes"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        return "control character"
    body = key[:-1] if key.endswith("/") else key  # a prefix may end in "/"
    if any(seg in ("", ".", "..") for seg in body.split("/")):
        return "empty, '.' or '..' path segment"
    return None
