"""Keep large buffers inside the process: glibc malloc settings for the data path's services.

Every batch the data path moves is a few MiB of ``bytes``. With glibc's
defaults a buffer that size is mmap()ed and munmap()ed each time (or the heap
top is trimmed after a free), so every MiB moved costs fresh pages: a page
fault and a zero-fill per 4 KiB, and on a VM that hands free memory back to
its host (virtio-balloon free page reporting, as on our build machines) a
host-side fault as well. Raising the mmap and trim thresholds makes freed
buffers go back to malloc's free lists and be reused, warm. Measured with
bench/churn.py at 100 MB/s offered: ingest 6.2 -> 4.0 and retention
7.5 -> 5.7 ms of CPU per MB (docs/data-path.md, "Allocator").

The cost is memory held after a peak: up to ``TRIM_THRESHOLD`` of freed heap
per arena stays with the process instead of going back to the system.
Set DIALBACK_MALLOC_TUNING=false to keep glibc's defaults.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger(__name__)

# mallopt(3) parameter numbers (malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3

MMAP_THRESHOLD = 64 << 20   # buffers below this come from the heap (a body is at most 8 x 1 MiB batches)
TRIM_THRESHOLD = 256 << 20  # freed heap kept before it is given back
TOP_PAD = 64 << 20          # heap grown in large steps, fewer brk calls


def tune_allocator() -> bool:
    """Apply the settings above (glibc only); True when applied. Idempotent."""
    if os.environ.get("DIALBACK_MALLOC_TUNING", "true").strip().lower() in ("0", "false", "no", "off"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        log.debug("not glibc: malloc settings left alone")
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = all(mallopt(p, v) == 1 for p, v in ((M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                                             (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD)))
    if not ok:
        log.warning("mallopt refused a setting; glibc defaults partly kept")
    return ok
