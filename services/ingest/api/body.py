"""Reading a request body without ever holding more than ``limit + 1`` bytes."""

from __future__ import annotations

from fastapi import Request

from services.ingest.errors import BatchTooLarge, MalformedBatch


async def read_limited(request: Request, limit: int) -> bytearray:
    """The body, refused past ``limit``; copied once, into a buffer sized from Content-Length when given."""
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
        buf += chunk[: limit + 1 - len(buf)]
        if len(buf) > limit:
            raise BatchTooLarge(f"batch is over the {limit}-byte limit; split it")
    return buf
