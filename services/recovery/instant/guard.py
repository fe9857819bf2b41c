"""An NBD backend that stops serving once its export's lease has lapsed.

GC deletes what a lease protects once the lease expires (shared/leases.py);
an export whose lease could not be renewed for half its TTL must not serve
bytes that may vanish or, through the overlay, mix with ones read before.
Every request first asks the export's :class:`shared.leases.LeaseKeeper`;
a lapsed lease fails it with EIO and a message saying why and what to do
(the NBD server logs it; the export lists as ``failed`` with that message).
"""

from __future__ import annotations

import errno

from shared.leases import LeaseKeeper, LeaseLapsed


class LeaseGuardedBackend:
    """Wraps an ExportBackend (agent/nbd/server.py): same interface, refused once ``keeper`` lapsed."""

    def __init__(self, inner, keeper: LeaseKeeper) -> None:
        self.inner, self.keeper = inner, keeper
        self.name, self.size, self.read_only = inner.name, inner.size, inner.read_only

    def _check(self) -> None:
        try:
            self.keeper.check()
        except LeaseLapsed as err:
            raise OSError(errno.EIO, f"export stopped: {err}; close it and create a new export") from err

    def read(self, offset: int, length: int) -> bytes:
        self._check()
        return self.inner.read(offset, length)

    def write(self, offset: int, data: bytes) -> None:
        self._check()
        self.inner.write(offset, data)

    def trim(self, offset: int, length: int) -> None:
        self._check()
        self.inner.trim(offset, length)

    def zeroes(self, offset: int, length: int, no_hole: bool) -> None:
        self._check()
        self.inner.zeroes(offset, length, no_hole)

    def flush(self) -> None:
        self._check()
        self.inner.flush()

    def close(self) -> None:
        if hasattr(self.inner, "close"):
            self.inner.close()

    def __getattr__(self, name: str):
        return getattr(self.inner, name)  # e.g. the overlay's path, the reader's counters
