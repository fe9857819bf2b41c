"""Import a blktrace capture (``blkparse`` default text output) as a profile.

For customers who already trace their disks (``blktrace -d /dev/sda -o - |
blkparse -i -``). Each event line looks like::

    8,0    3        1     0.000000000  4162  Q  WS 3417048 + 8 [kjournald]

device, cpu, sequence, seconds since trace start, pid, action, RWBS,
start sector + sector count, process. Writes are counted once, at one
action (default ``Q``, the request entering the block layer; ``C``,
completion, is the alternative). RWBS with ``W`` is a write, with ``D`` a
discard (counted as trim). Payloads are not in a trace, so the profile has
no compressibility samples; the analyzer then uses the ratio the user gives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, TextIO

from agent.profile.accumulate import DATA, TRIM, Accumulator
from agent.profile.format import Header, ProfileError
from agent.profile.locality import LocalityTracker
from agent.profile.writer import ProfileWriter

SECTOR = 512
_EVENT = re.compile(r"^\s*(\d+),(\d+)\s+\d+\s+\d+\s+(\d+(?:\.\d+)?)\s+\d+\s+([A-Za-z]{1,2})\s+([A-Z]+)\s+"
                    r"(\d+)\s+\+\s+(\d+)")


@dataclass
class ImportStats:
    lines: int = 0
    events: int = 0
    writes: int = 0
    trims: int = 0
    skipped_devices: int = 0
    duration_s: float = 0.0
    records: int = 0


def import_blkparse(lines: Iterable[str], out: str, server: str, *, start_unix: int, volume: str = "disk0",
                    action: str = "Q", device: str | None = None, block_size: int = 4096,
                    locality_window_s: int = 3600) -> ImportStats:
    """Read blkparse text lines and write a profile to ``out``; returns counts."""
    stats = ImportStats()
    header = Header(server, volume, 0, block_size, locality_window_s, 1, start_unix)
    with ProfileWriter(out, header, fsync_every_s=10**9) as w:
        def sink(sec):
            w.append(sec)
            stats.records += 1
        acc = Accumulator(sink, LocalityTracker(block_size, locality_window_s))
        acc.start(start_unix)
        last = 0.0
        for stats.lines, line in enumerate(lines, 1):
            m = _EVENT.match(line)
            if not m:
                continue
            stats.events += 1
            maj, mnr, ts, act, rwbs, sector, count = m.groups()
            if act != action:
                continue
            if device is not None and f"{maj},{mnr}" != device:
                stats.skipped_devices += 1
                continue
            if "D" in rwbs:
                kind = TRIM
            elif "W" in rwbs and int(count):
                kind = DATA
            else:
                continue
            t = float(ts)
            last = max(last, t)
            acc.add(start_unix + int(t), int(sector) * SECTOR, int(count) * SECTOR, kind)
            if kind == DATA:
                stats.writes += 1
            else:
                stats.trims += 1
        if stats.writes + stats.trims == 0:
            raise ProfileError(
                f"no write events with action {action!r} found in {stats.lines} lines ({stats.events} events); "
                "expected blkparse's default text output (blkparse -i TRACE), "
                "or try --action C if the trace holds completions only")
        stats.duration_s = last
        acc.roll(start_unix + int(last) + 1)
    return stats


def import_blkparse_file(path: str, out: str, server: str | None = None, start_unix: int | None = None,
                         **kw) -> ImportStats:
    """File front end: the server name defaults to the file's stem; the start to its mtime minus the trace span."""
    p = Path(path)
    try:
        f: TextIO = open(p, encoding="utf-8", errors="replace")
    except OSError as err:
        raise ProfileError(f"{path}: cannot open blkparse output: {err.strerror or err}") from err
    with f:
        if start_unix is None:
            start_unix = int(p.stat().st_mtime) - int(_last_time(p))
        return import_blkparse(f, out, server or p.stem, start_unix=start_unix, **kw)


def _last_time(p: Path) -> float:
    """The trace's last event time, from the file's tail (cheap even for huge traces)."""
    with open(p, "rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - (1 << 20)))
        tail = f.read().decode("utf-8", "replace").splitlines()
    times = [float(m.group(3)) for m in map(_EVENT.match, tail) if m]
    return max(times, default=0.0)
