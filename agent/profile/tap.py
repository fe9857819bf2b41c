"""Profile-only tap: serve volumes over NBD, apply writes, record a profile, ship nothing.

What `dialback agent profile` runs on a prospect's server before a contract:
the same NBD server as the protecting agent, but each write only goes to the
disk and to a :class:`ProfileRecorder` (counters, a sampled zstd probe), so
the overhead is the NBD hop plus a few set operations per write. No spool,
no network, nothing leaves the machine but the profile file.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from agent.disk import Disk
from agent.nbd.server import NbdServer
from agent.profile.accumulate import DATA, TRIM, ZEROES
from agent.profile.recorder import ProfileRecorder

log = logging.getLogger(__name__)


class ProfilingExport:
    """An NBD export backed by a disk whose writes feed a recorder (implements ExportBackend)."""

    def __init__(self, disk: Disk, recorder: ProfileRecorder):
        self.disk, self.recorder = disk, recorder
        self.name, self.size = disk.name, disk.size
        self._lock = threading.Lock()  # Disk is not locked; NBD connections are threads

    def read(self, offset: int, length: int) -> bytes:
        return self.disk.read(offset, length)

    def write(self, offset: int, data) -> None:
        with self._lock:
            self.disk.write(offset, data)
        self.recorder.on_write(offset, len(data), data, DATA)

    def trim(self, offset: int, length: int) -> None:
        with self._lock:
            self.disk.zero(offset, length, punch=True)
        self.recorder.on_write(offset, length, None, TRIM)

    def zeroes(self, offset: int, length: int, no_hole: bool) -> None:
        with self._lock:
            self.disk.zero(offset, length, punch=not no_hole)
        self.recorder.on_write(offset, length, None, ZEROES)

    def flush(self) -> None:
        self.disk.sync()


class ProfileTap:
    """Start/stop an NBD server whose exports are profiled, one profile file per volume."""

    def __init__(self, volumes: dict[str, Path], out_dir: Path, server: str, host: str = "127.0.0.1",
                 port: int | None = None, *, unix_path: Path | None = None, tls=None, **recorder_kw):
        """NBD on ``unix_path`` (0600; default <out_dir>/<server>.nbd.sock), or on TCP ``host:port``
        with ``tls`` (a server context, shared/nbd_tls.py): like the protecting agent, never plain TCP."""
        if port is not None and tls is None:
            raise ValueError("the profile tap serves TCP only with mutual TLS: give --nbd-tls-dir, or leave "
                             "--nbd-port unset and connect to its Unix socket")
        out_dir.mkdir(parents=True, exist_ok=True)
        self.recorders: dict[str, ProfileRecorder] = {}
        exports = {}
        for name, path in volumes.items():
            disk = Disk(name, path)
            rec = ProfileRecorder(str(out_dir / f"{server}.{name}.dbprof"), server, name, disk.size, **recorder_kw)
            self.recorders[name] = rec
            exports[name] = ProfilingExport(disk, rec)
        self.exports = exports
        if port is None:
            self.unix_path = unix_path or out_dir / f"{server}.nbd.sock"
            self.nbd = NbdServer(exports, unix_path=self.unix_path, setting="--nbd-socket")
        else:
            self.unix_path = None
            self.nbd = NbdServer(exports, host, port, tls=tls)

    def start(self) -> int:
        for rec in self.recorders.values():
            rec.start()
        return self.nbd.start_sync()

    def stop(self) -> None:
        self.nbd.close_sync()
        for name, rec in self.recorders.items():
            rec.close()
            self.exports[name].disk.sync()
            self.exports[name].disk.close()
        log.info("profiles closed: %s", ", ".join(str(r.writer.path) for r in self.recorders.values()))
