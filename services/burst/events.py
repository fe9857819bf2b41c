"""Append-only event log: one JSON-lines file per operation, fsynced per event.

Layout: <state_dir>/operations/<tenant>/<op_id>.jsonl. An event is durable
once `append` returns. A crash can leave a torn last line; `read` ignores it
(that event never happened), so the writer that resumes simply appends again.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from shared.tenancy import check_tenant

EVENT_VERSION = 1


class EventLog:
    def __init__(self, state_dir: Path) -> None:
        self.root = Path(state_dir) / "operations"
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def path(self, tenant: str, op_id: str) -> Path:
        return self.root / check_tenant(tenant) / f"{op_id}.jsonl"

    def append(self, tenant: str, op_id: str, type_: str, **data: Any) -> dict:
        event = {"type": type_, "v": EVENT_VERSION, "time": time.time(), **data}
        line = (json.dumps(event, sort_keys=True) + "\n").encode()
        p = self.path(tenant, op_id)
        with self._lock:
            new = not p.exists()
            p.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                self._heal_torn_tail(fd, p)
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            if new:  # the directory entry must be durable too
                dfd = os.open(p.parent, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
        return event

    @staticmethod
    def _heal_torn_tail(fd: int, p: Path) -> None:
        size = os.fstat(fd).st_size
        if size and p.read_bytes()[-1:] != b"\n":
            os.write(fd, b"\n")  # ends the torn line; read() skips it as invalid JSON

    def read(self, tenant: str, op_id: str) -> list[dict]:
        p = self.path(tenant, op_id)
        try:
            raw = p.read_bytes()
        except FileNotFoundError:
            return []
        events = []
        for line in raw.splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue  # a torn write from a crash: that event never happened
        return events

    def exists(self, tenant: str, op_id: str) -> bool:
        return self.path(tenant, op_id).exists()

    def operations(self, tenant: str | None = None) -> Iterator[tuple[str, str]]:
        dirs = [self.root / check_tenant(tenant)] if tenant else sorted(self.root.iterdir())
        for d in dirs:
            if d.is_dir():
                for f in sorted(d.glob("*.jsonl")):
                    yield d.name, f.stem
