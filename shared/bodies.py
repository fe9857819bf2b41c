"""Multi-batch request bodies: several v1 batches in one agent → ingest POST.

Contract: docs/data-path.md ("Agent → ingest"). A multi-batch body is framed
exactly like a journal segment (``u32 little-endian length | v1 batch``,
repeated; shared.journal's segment codec), holds 1..MAX_BATCHES_PER_BODY
batches whose sequences continue one another gap-free, and is sealed as a
whole when the tenant has a transport key (the envelope's first..last is the
whole body's range). Ingest produces each batch as its own Kafka message, so
nothing downstream of the writes topic changes; what a body saves is the
per-request fixed cost (HTTP round trip, one control event and one wait for
Kafka per body instead of per batch).
"""

from __future__ import annotations

from typing import Sequence

from shared.crypto.transport import OVERHEAD
from shared.errors import DialbackError
from shared.frames import MAX_BATCH_BYTES
from shared.journal import JournalError, iter_segment_batches, join_segment

BATCHES_CONTENT_TYPE = "application/x-dialback-batches"
SEALED_BATCHES_CONTENT_TYPE = "application/x-dialback-sealed-batches"
MAX_BATCHES_PER_BODY = 8
_FRAME = 4  # u32 length prefix per batch


class BodyError(DialbackError):
    """A multi-batch body that is not framed as the contract says."""


def max_body_bytes(sealed: bool) -> int:
    """Largest acceptable multi-batch body (framing and, when sealed, envelope included)."""
    return MAX_BATCHES_PER_BODY * (MAX_BATCH_BYTES + _FRAME) + (OVERHEAD if sealed else 0)


def encode_body(batches: Sequence[bytes]) -> bytes:
    return join_body([[b] for b in batches])


def join_body(batches: Sequence[Sequence[bytes | memoryview]]) -> bytes:
    """A body from batches given as buffer lists (each joined is one batch): one copy in all."""
    if not 1 <= len(batches) <= MAX_BATCHES_PER_BODY:
        raise BodyError(f"a body holds 1..{MAX_BATCHES_PER_BODY} batches, not {len(batches)}")
    return join_segment(batches)


def split_body(body: bytes | memoryview) -> list[memoryview]:
    """The batches of a body (zero-copy views, not yet decoded); BodyError when the framing is wrong."""
    try:
        parts = list(iter_segment_batches(body, "batches body"))
    except JournalError as err:
        raise BodyError(str(err)) from None
    if not 1 <= len(parts) <= MAX_BATCHES_PER_BODY:
        raise BodyError(f"a body holds 1..{MAX_BATCHES_PER_BODY} batches, this one {len(parts)}; "
                        "send fewer batches per request")
    return parts
