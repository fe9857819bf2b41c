"""CPU time per process while a benchmark runs, so a figure says where the cores went."""

from __future__ import annotations

import psutil


class CpuMeter:
    """Snapshot user+system CPU seconds of named processes at start and stop (children not included)."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items() if pid}
        self.start = self._sample()

    def _sample(self) -> dict[str, float]:
        out = {}
        for name, p in self.procs.items():
            try:
                t = p.cpu_times()
                out[name] = t.user + t.system
            except psutil.Error:
                out[name] = float("nan")
        return out

    def stop(self, wall_seconds: float, megabytes: float) -> dict:
        """{"cores": per-process share of a core, "ms_per_MB": CPU per MB carried, "total": both summed}."""
        end = self._sample()
        used = {n: end[n] - self.start.get(n, 0.0) for n in end}
        total = sum(v for v in used.values() if v == v)
        return {
            "cores": {n: round(v / wall_seconds, 2) for n, v in used.items()} | {"total": round(total / wall_seconds, 2)},
            "ms_per_MB": {n: round(1000 * v / megabytes, 2) for n, v in used.items()}
            | {"total": round(1000 * total / megabytes, 2)},
        }
