"""Reading a request body without ever holding more than ``limit + 1`` bytes, or more than a hold allows."""

from __future__ import annotations

from fastapi import Request

from services.ingest.errors import BatchTooLarge, MalformedBatch, Overloaded
from services.ingest.inflight import Hold


async def read_limited(request: Request, limit: int, hold: Hold | None = None) -> bytearray:
    """The body, refused past ``limit``; copied once, into a buffer sized from Content-Length when given.

    ``hold`` (services.ingest.inflight) reserves the bytes before they are buffered: the declared length
    before the buffer is allocated, a chunked body chunk by chunk. When it refuses, the rest of the body
    is read and dropped (at most ``limit`` bytes, never kept), so the client is not cut off mid-send and
    does get the 503 and its Retry-After, then Overloaded is raised.
    """
    declared = request.headers.get("content-length")
    n = None
    if declared is not None:
        try:
            n = int(declared)
        except ValueError as err:
            raise MalformedBatch(f"Content-Length {declared!r} is not a number") from err
        if n > limit:
            raise BatchTooLarge(f"batch of {n} bytes is over the {limit}-byte limit; split it")
    if n is not None:
        await _reserve(request, hold, n, 0, limit)
        # Bodies are megabytes: one buffer of the declared size, filled in place (no regrowth
        # copies, no final copy). The server enforces Content-Length; a short body is refused.
        buf = bytearray(n)
        view, pos = memoryview(buf), 0
        async for chunk in request.stream():
            if pos + len(chunk) > n:
                raise MalformedBatch(f"body is longer than its Content-Length of {n} bytes")
            view[pos: pos + len(chunk)] = chunk
            pos += len(chunk)
        if pos != n:
            raise MalformedBatch(f"body ended after {pos} of the {n} bytes its Content-Length announced")
        return buf
    buf = bytearray()
    # No Content-Length (chunked): count what arrives.
    async for chunk in request.stream():
        chunk = chunk[: limit + 1 - len(buf)]
        await _reserve(request, hold, len(chunk), len(buf) + len(chunk), limit)
        buf += chunk
        if len(buf) > limit:
            raise BatchTooLarge(f"batch is over the {limit}-byte limit; split it")
    return buf


async def _reserve(request: Request, hold: Hold | None, n: int, seen: int, limit: int) -> None:
    if hold is None:
        return
    try:
        hold.grow(n)
    except Overloaded:
        await _drain(request, limit - seen)
        raise


async def _drain(request: Request, budget: int) -> None:
    """Read and drop what is left of the body, up to ``budget`` bytes (one chunk in memory at a time)."""
    async for chunk in request.stream():
        budget -= len(chunk)
        if budget < 0:
            return
