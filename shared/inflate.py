"""Bounded zstd decompression: the one way Dialback inflates a payload it did not just compress.

Every zstd payload Dialback reads (a record received by ingest, a journal
record in retention, recovery, verify, instant access and failback, a base
chunk) comes from outside the process and may be a decompression bomb: a few
kilobytes that declare or inflate to gigabytes. :func:`inflate` never holds
more than ``limit + 1`` bytes of output, whatever the input says:

* a frame whose header declares a content size over ``limit`` is refused
  before anything is decoded;
* the decoder's window is capped at the smallest power of two >= ``limit``
  (our compressors compress whole buffers, so their frames never need more),
  refusing a frame that asks for a bigger one;
* the output is read through a streaming reader into a buffer of
  ``limit + 1`` bytes, and a frame that fills it is refused.

Errors are the caller's codec error (``error``), so a decoder keeps raising
only its documented exception types.
"""

from __future__ import annotations

import threading
from typing import Callable

import zstandard

from shared.errors import DialbackError

_MIN_WINDOW = 1 << 10  # zstd's smallest window (ZSTD_WINDOWLOG_MIN)
_MAX_WINDOW = 1 << 31  # the largest ZSTD_DCtx_setMaxWindowSize accepts

_local = threading.local()


class InflateError(DialbackError, ValueError):
    """A zstd payload that is not a valid frame or would inflate past its limit."""


def window_for(limit: int) -> int:
    """The decoder window for outputs of at most ``limit`` bytes: the next power of two, at least 1 KiB."""
    return min(_MAX_WINDOW, max(_MIN_WINDOW, 1 << max(0, limit - 1).bit_length()))


def _dctx(window: int) -> zstandard.ZstdDecompressor:
    # Contexts are costly to create and not thread-safe: one per thread and window size.
    cache = _local.__dict__.setdefault("dctx", {})
    d = cache.get(window)
    if d is None:
        d = cache[window] = zstandard.ZstdDecompressor(max_window_size=window)
    return d


def inflate(data: bytes | bytearray | memoryview, limit: int,
            error: Callable[[str], Exception] = InflateError, what: str = "zstd payload") -> bytes:
    """The zstd frame at the start of ``data``, decompressed: at most ``limit`` bytes, else ``error``.

    Raises ``error(message)`` (chained from the zstd error, if any) when ``data`` is not a
    zstd frame, is truncated or corrupt, declares more than ``limit`` bytes, or inflates past
    ``limit``. Bytes after the first frame are ignored. Memory is O(limit), never O(declared).
    """
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    try:
        params = zstandard.get_frame_parameters(data)
    except zstandard.ZstdError as err:
        raise error(f"{what} is not a zstd frame: {err}") from err
    declared = params.content_size
    known = declared != zstandard.CONTENTSIZE_UNKNOWN
    if known and declared > limit:
        raise error(f"{what} decompresses to {declared} bytes (its frame says), over its {limit}-byte limit")
    try:
        with _dctx(window_for(limit)).stream_reader(data, read_across_frames=False) as reader:
            out = reader.read(limit + 1)
    except zstandard.ZstdError as err:
        raise error(f"{what} does not decompress within its {limit}-byte limit: {err}") from err
    if len(out) > limit:
        raise error(f"{what} inflates past its {limit}-byte limit")
    if known and len(out) != declared:
        raise error(f"{what} is truncated: it decompresses to {len(out)} of the {declared} bytes its frame declares")
    return out
