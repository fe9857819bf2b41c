"""Early writeback: start writing dirty pages to disk before FLUSH asks.

The tap writes every byte twice (disk and spool). Left alone, the kernel
keeps both in the page cache until a FLUSH, which then waits for all of it.
Kicking asynchronous writeback (sync_file_range SYNC_FILE_RANGE_WRITE) every
few MiB overlaps that disk work with the client's transfer, so a FLUSH only
waits for the tail. It never waits itself and changes no durability promise:
FLUSH/FUA still fdatasync everything.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
from typing import Callable

log = logging.getLogger(__name__)

_SYNC_FILE_RANGE_WRITE = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]


def start_writeback(fd: int) -> None:
    """Ask the kernel to begin writing fd's dirty pages (does not wait for them)."""
    if _libc.sync_file_range(fd, 0, 0, _SYNC_FILE_RANGE_WRITE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class Writeback:
    """A background thread that kicks writeback after every ``every`` bytes written."""

    def __init__(self, fds: Callable[[], list[int]], every: int):
        self._fds = fds  # returns dup'ed descriptors; closed here after use
        self.every = every
        self._pending = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="writeback", daemon=True)
        if every > 0:
            self._thread.start()

    def wrote(self, n: int) -> None:
        if self.every <= 0:
            return
        with self._lock:
            self._pending += n
            if self._pending < self.every:
                return
            self._pending = 0
        self._wake.set()

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait()
            self._wake.clear()
            if self._stop:
                return
            for fd in self._fds():
                try:
                    start_writeback(fd)
                except OSError as err:  # only an optimisation: never fail a write for it
                    log.debug("early writeback failed: %s", err)
                finally:
                    os.close(fd)

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(5)
