"""Per-second series per server, built from one or more profile files.

Profiles store busy seconds and idle spans; the analyzer wants dense
per-second arrays over a common time axis. Several files of one server (a
recorder restarted into a new file, weekly files) are merged; seconds no file
covers are *gaps*: counted as zero load (the replication queue keeps
draining) and reported as coverage so nobody mistakes them for idle time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from agent.profile.format import N_BUCKETS, ProfileError
from agent.profile.reader import Profile

SERIES_FIELDS = ("write_bytes", "zero_bytes", "trim_bytes", "iops", "overwrite_bytes")


@dataclass
class Series:
    """Dense per-second counters of one server (or the total) from ``start`` for ``len`` seconds."""

    name: str
    start: int
    write_bytes: np.ndarray
    zero_bytes: np.ndarray
    trim_bytes: np.ndarray
    iops: np.ndarray
    overwrite_bytes: np.ndarray
    covered: np.ndarray  # bool: some profile record covers this second
    hist: np.ndarray = field(default_factory=lambda: np.zeros(N_BUCKETS, np.int64))
    sample_raw: int = 0
    sample_zstd: int = 0
    volume_size: int = 0
    volumes: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.write_bytes)

    @property
    def compress_ratio(self) -> float | None:
        """Measured zstd size / raw size of the sampled payloads; None without samples."""
        return self.sample_zstd / self.sample_raw if self.sample_raw else None

    @property
    def covered_seconds(self) -> int:
        return int(self.covered.sum())


def from_arrays(name: str, write_bytes: np.ndarray, iops: np.ndarray, start: int = 0) -> Series:
    """A fully covered series from per-second bytes and writes (benches, what-if inputs)."""
    s = _blank(name, start, len(write_bytes))
    s.write_bytes[:], s.iops[:], s.covered[:] = write_bytes, iops, True
    return s


def _blank(name: str, start: int, n: int) -> Series:
    z = lambda: np.zeros(n, np.float64)  # noqa: E731
    return Series(name, start, z(), z(), z(), z(), z(), np.zeros(n, bool))


def server_series(profiles: list[Profile]) -> list[Series]:
    """One series per server: its volumes summed, each volume's files merged (overlaps refused)."""
    by_volume: dict[tuple[str, str], list[Profile]] = {}
    for p in profiles:
        by_volume.setdefault((p.header.server, p.header.volume), []).append(p)
    per_server: dict[str, list[Series]] = {}
    for (server, volume), profs in by_volume.items():
        profs = [p for p in profs if len(p.records)]
        if not profs:
            raise ProfileError(f"profiles of {server}/{volume} hold no records yet; record for longer")
        start = min(int(p.records["time"][0]) for p in profs)
        end = max(int(p.records["time"][-1] + p.records["span"][-1]) for p in profs)
        s = _blank(server, start, end - start)
        for p in profs:
            _fill(s, p)
        per_server.setdefault(server, []).append(s)
    return [vols[0] if len(vols) == 1 else sum_series(name, vols) for name, vols in per_server.items()]


def _fill(s: Series, p: Profile) -> None:
    r = p.records
    idx = (r["time"] - s.start).astype(np.int64)
    span = r["span"].astype(np.int64)
    cover = np.zeros(len(s) + 1, np.int64)
    np.add.at(cover, idx, 1)
    np.add.at(cover, idx + span, -1)
    covered = np.cumsum(cover[:-1]) > 0
    if (covered & s.covered).any():
        t = s.start + int(np.argmax(covered & s.covered))
        raise ProfileError(f"{p.path}: covers second {t} that another profile of {s.name}/{p.header.volume} "
                           "also covers; pass each recording once")
    s.covered |= covered
    for f in SERIES_FIELDS:
        # Counters of span records are zero (idle), so only a record's first second carries them.
        getattr(s, f)[idx] += r[f]
    s.hist += r["hist"].sum(axis=0, dtype=np.int64)
    s.sample_raw += int(r["sample_raw"].sum(dtype=np.int64))
    s.sample_zstd += int(r["sample_zstd"].sum(dtype=np.int64))
    s.volume_size = max(s.volume_size, p.header.volume_size)
    if p.header.volume not in s.volumes:
        s.volumes.append(p.header.volume)
    s.sources.append(p.path)
    s.warnings += p.warnings


def total_series(servers: list[Series]) -> Series:
    """Sum of all servers on the union of their time axes (what shares the provider's WAN link)."""
    return sum_series("total", servers)


def sum_series(name: str, servers: list[Series]) -> Series:
    start = min(s.start for s in servers)
    end = max(s.start + len(s) for s in servers)
    t = _blank(name, start, end - start)
    for s in servers:
        sl = slice(s.start - start, s.start - start + len(s))
        for f in SERIES_FIELDS:
            getattr(t, f)[sl] += getattr(s, f)
        t.covered[sl] |= s.covered
        t.hist += s.hist
        t.sample_raw += s.sample_raw
        t.sample_zstd += s.sample_zstd
        t.volume_size += s.volume_size
        t.volumes += s.volumes
        t.sources += s.sources
        t.warnings += s.warnings
    return t
