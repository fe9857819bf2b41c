"""CPU time per process while a benchmark runs, so a figure says where the cores went."""

from __future__ import annotations

import contextlib

import psutil


class CpuMeter:
    """Snapshot user+system CPU seconds of named processes at start and stop (children not included)."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items() if pid}
        self.start = self._sample()
        self.faults0 = self._faults()

    def _sample(self) -> dict[str, float]:
        out = {}
        for name, p in self.procs.items():
            try:
                t = p.cpu_times()
                out[name] = t.user + t.system
            except psutil.Error:
                out[name] = float("nan")
        return out

    def _faults(self) -> dict[str, int]:
        """Minor page faults so far (/proc/PID/stat field 10): each one is a fresh page the kernel handed over."""
        out = {}
        for name, p in self.procs.items():
            with contextlib.suppress(OSError, IndexError, ValueError):  # gone: no figure
                with open(f"/proc/{p.pid}/stat") as f:
                    out[name] = int(f.read().rsplit(")", 1)[1].split()[7])
        return out

    def stop(self, wall_seconds: float, megabytes: float) -> dict:
        """{"cores": per-process share of a core, "ms_per_MB": CPU per MB carried, "total": both summed,
        "faults_per_MB": minor page faults per MB carried (4 KiB each: 244 per MB means every byte carried landed in a fresh page once)}."""
        end, faults = self._sample(), self._faults()
        used = {n: end[n] - self.start.get(n, 0.0) for n in end}
        total = sum(v for v in used.values() if v == v)
        return {
            "cores": {n: round(v / wall_seconds, 2) for n, v in used.items()} | {"total": round(total / wall_seconds, 2)},
            "ms_per_MB": {n: round(1000 * v / megabytes, 2) for n, v in used.items()}
            | {"total": round(1000 * total / megabytes, 2)},
            "faults_per_MB": {n: round((v - self.faults0.get(n, v)) / megabytes) for n, v in faults.items()},
        }
