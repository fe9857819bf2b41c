"""Reading one object for verify: classify what went wrong in the words the report uses."""

from __future__ import annotations

import hashlib

from shared import keys
from shared.inflate import InflateError, inflate
from shared.objectstore import ObjectNotFound, ObjectStore, ObjectStoreError
from shared.objectstore.encrypted import IntegrityError


def classify(err: Exception) -> str:
    """A short, stable name for a read or decode failure."""
    msg = str(err).lower()
    if isinstance(err, IntegrityError):
        if "failed authentication" in msg:
            return "tag failed"
        return "truncated" if "truncated" in msg or "stored bytes" in msg else "corrupt"
    if isinstance(err, ObjectNotFound):
        return "missing"
    if isinstance(err, ObjectStoreError):
        return "unreadable"
    if "crc" in msg:
        return "CRC mismatch"
    if "truncated" in msg or "does not fit" in msg or "runs past" in msg:
        return "truncated"
    return "corrupt"


def read_chunk_checked(store: ObjectStore, bucket: str, cid: str, length: int) -> int | tuple[str, str]:
    """Read, decompress and hash chunk ``cid``: its stored size when sound, else ``(what, detail)``."""
    key = keys.chunk_key(cid)
    try:
        body = store.get(bucket, key)
    except ObjectNotFound:
        return "missing", "chunk referenced by a base is not in the bucket"
    except ObjectStoreError as err:
        return classify(err), str(err)
    try:
        data = inflate(body, length, InflateError, "chunk")
    except InflateError as err:
        what = "truncated" if "incomplete" in str(err).lower() or "truncat" in str(err).lower() else "corrupt"
        return what, f"does not decompress ({err})"
    if hashlib.sha256(data).hexdigest() != cid:
        return "chunk hash mismatch", "content does not hash to its address (SHA-256)"
    if len(data) != length:
        return "range mismatch", f"holds {len(data)} bytes, its position in the base needs {length}"
    return len(body)
