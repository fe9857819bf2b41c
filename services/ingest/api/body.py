"""Reading a request body without ever holding more than ``limit + 1`` bytes."""

from __future__ import annotations

from fastapi import Request

from services.ingest.errors import BatchTooLarge, MalformedBatch


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            n = int(declared)
        except ValueError as err:
            raise MalformedBatch(f"Content-Length {declared!r} is not a number") from err
        if n > limit:
            raise BatchTooLarge(f"batch of {n} bytes is over the {limit}-byte limit; split it")
    buf = bytearray()
    # Content-Length can be absent (chunked) or wrong: count what arrives too.
    async for chunk in request.stream():
        buf += chunk[: limit + 1 - len(buf)]
        if len(buf) > limit:
            raise BatchTooLarge(f"batch is over the {limit}-byte limit; split it")
    return bytes(buf)
