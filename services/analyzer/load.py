"""Protection load: churn statistics and spikes of one series."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.profile.format import N_BUCKETS, bucket_label
from services.analyzer.series import Series


@dataclass
class Spike:
    start: int  # Unix second
    seconds: int
    bytes: float
    peak_rate: float  # bytes/s, highest single second inside the spike
    mean_rate: float


def _pct(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q)) if len(x) else 0.0


def minute_rates(values: np.ndarray, covered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean rate per whole minute of covered time, and each minute's first index."""
    n = len(values) // 60 * 60
    if n == 0:
        return np.array([values[covered].mean()]) if covered.any() else np.zeros(0), np.zeros(1, np.int64)
    v = values[:n].reshape(-1, 60)
    c = covered[:n].reshape(-1, 60)
    cnt = c.sum(axis=1)
    keep = cnt > 0
    return v.sum(axis=1)[keep] / cnt[keep], np.nonzero(keep)[0] * 60


def churn_stats(s: Series) -> dict:
    """Average and tail churn (bytes/s, per second and per minute), IOPS, daily volume, write mix."""
    cov = s.covered
    w, iops = s.write_bytes[cov], s.iops[cov]
    mins, _ = minute_rates(s.write_bytes, cov)
    secs = max(int(cov.sum()), 1)
    writes = max(int(s.hist.sum()), 1)
    total_w = float(w.sum())
    return {
        "covered_seconds": int(cov.sum()), "span_seconds": len(s),
        "write_bytes": total_w, "zero_bytes": float(s.zero_bytes.sum()), "trim_bytes": float(s.trim_bytes.sum()),
        "avg_rate": total_w / secs, "p50_rate": _pct(w, 50), "p95_rate": _pct(w, 95), "p99_rate": _pct(w, 99),
        "max_rate": float(w.max()) if len(w) else 0.0,
        "p95_minute_rate": _pct(mins, 95), "p99_minute_rate": _pct(mins, 99),
        "avg_iops": float(iops.sum()) / secs, "p95_iops": _pct(iops, 95), "p99_iops": _pct(iops, 99),
        "max_iops": float(iops.max()) if len(iops) else 0.0,
        "daily_churn": total_w / secs * 86400,
        "avg_write_size": (total_w + float(s.zero_bytes.sum())) / writes,
        "overwrite_fraction": float(s.overwrite_bytes.sum()) / total_w if total_w else 0.0,
        "write_size_histogram": {bucket_label(i): int(s.hist[i]) for i in range(N_BUCKETS)},
    }


def find_spikes(s: Series, factor: float = 4.0, min_rate: float = 1 << 20, limit: int = 20) -> tuple[list[Spike], int]:
    """Minutes whose mean rate exceeds ``factor`` x the median busy-minute rate (and ``min_rate``).

    Adjacent spike minutes merge into one spike. Returns the ``limit``
    largest by bytes (in time order) and how many there were in all.
    """
    rates, starts = minute_rates(s.write_bytes, s.covered)
    busy = rates[rates > 0]
    if not len(busy):
        return [], 0
    threshold = max(factor * float(np.median(busy)), float(min_rate))
    hot = np.nonzero(rates > threshold)[0]
    if not len(hot):
        return [], 0
    groups = np.split(hot, np.nonzero(np.diff(starts[hot]) != 60)[0] + 1)
    spikes = []
    for g in groups:
        a, b = int(starts[g[0]]), int(starts[g[-1]]) + 60
        seg = s.write_bytes[a:b]
        spikes.append(Spike(s.start + a, b - a, float(seg.sum()), float(seg.max()), float(seg.sum()) / (b - a)))
    top = sorted(spikes, key=lambda x: -x.bytes)[:limit]
    return sorted(top, key=lambda x: x.start), len(spikes)
