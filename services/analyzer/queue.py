"""Replication-queue simulation over a recorded per-second series.

Model: the agent's spool is a FIFO queue drained at a constant ``bandwidth``
(bytes/s). Bytes of second ``t`` arrive spread evenly over that second. RPO
at a moment is the age of the oldest byte not yet shipped (the data path's
definition: now minus the time of the oldest unacknowledged write), plus a
fixed pipeline latency (batching, round trip, Kafka ack) the caller adds.

The queue follows Lindley's recursion Q[t] = max(0, Q[t-1] + a[t] - B), whose
closed form Q = S - min(0, running min of S), S = cumsum(a - B), is computed
with numpy in O(n): a week of seconds simulates in milliseconds, so required
bandwidths are found by bisection over whole simulations, not by averaging.
Everything is homogeneous: scaling arrivals and bandwidth by k leaves RPO
unchanged, so a growth factor scales required bandwidth exactly.
"""

from __future__ import annotations

import numpy as np


def queue(arrivals: np.ndarray, bandwidth: float) -> tuple[np.ndarray, np.ndarray]:
    """(A, D): cumulative bytes arrived and shipped by the end of each second."""
    a = np.asarray(arrivals, dtype=np.float64)
    arrived = np.cumsum(a)
    s = np.cumsum(a - float(bandwidth))
    backlog = s - np.minimum(np.minimum.accumulate(s), 0.0)
    return arrived, arrived - backlog


def rpo_series(arrivals: np.ndarray, bandwidth: float) -> np.ndarray:
    """Queueing RPO (seconds) at the end of every second; 0 while nothing waits."""
    a = np.asarray(arrivals, dtype=np.float64)
    arrived, shipped = queue(a, bandwidth)
    eps = 1e-9 * max(float(arrived[-1]) if len(a) else 0.0, 1.0)
    waiting = arrived - shipped > eps
    rpo = np.zeros(len(a))
    idx = np.nonzero(waiting)[0]
    if len(idx):
        d = shipped[idx]
        # The oldest unshipped byte is byte number d; it arrived during second s, the first with A[s] > d.
        s = np.minimum(np.searchsorted(arrived, d + eps, side="left"), len(a) - 1)
        before = np.where(s > 0, arrived[np.maximum(s - 1, 0)], 0.0)
        frac = np.clip((d - before) / np.maximum(a[s], 1e-12), 0.0, 1.0)
        rpo[idx] = (idx + 1) - (s + frac)
    return rpo


class Workload:
    """An arrival series with what every bandwidth trial shares precomputed."""

    def __init__(self, arrivals: np.ndarray, covered: np.ndarray | None = None):
        self.a = np.asarray(arrivals, dtype=np.float64)
        self.n = len(self.a)
        # Seconds no profile covers carry no load (the queue drains) but do not count as time within target.
        self.covered = None if covered is None or bool(np.all(covered)) else np.asarray(covered, bool)
        self.arrived = np.cumsum(self.a)
        self.ticks = np.arange(1, self.n + 1, dtype=np.float64)
        self.eps = 1e-9 * max(float(self.arrived[-1]) if self.n else 0.0, 1.0)
        self.peak = float(self.a.max()) if self.n else 0.0
        self._due: dict[float, np.ndarray] = {}

    def shipped(self, bandwidth: float) -> np.ndarray:
        s = self.arrived - float(bandwidth) * self.ticks
        return self.arrived - (s - np.minimum(np.minimum.accumulate(s), 0.0))

    def due(self, target_s: float) -> np.ndarray:
        """Bytes that must be shipped by the end of each second for RPO <= target there."""
        if target_s not in self._due:
            curve_t = np.arange(0, self.n + 1, dtype=np.float64)
            curve = np.concatenate(([0.0], self.arrived))
            self._due[target_s] = np.interp(self.ticks - float(target_s), curve_t, curve, left=0.0)
        return self._due[target_s]

    def within_target(self, bandwidth: float, target_s: float) -> float:
        """Fraction of seconds whose queueing RPO is <= ``target_s``.

        Same model as :func:`rpo_series` without locating each oldest byte:
        the RPO at the end of second t exceeds T exactly when fewer bytes
        have been shipped than had arrived by time t + 1 - T (the arrival
        curve interpolated within seconds).
        """
        if not self.n:
            return 1.0
        ok = self.shipped(bandwidth) + self.eps >= self.due(target_s)
        if self.covered is not None:
            ok = ok[self.covered]
        return float(np.mean(ok)) if len(ok) else 1.0

    def required_bandwidth(self, target_s: float, fraction: float = 1.0, rel_tol: float = 1e-3) -> float:
        """Smallest bandwidth (bytes/s) keeping RPO <= ``target_s`` for ``fraction`` of the seconds.

        Within-target is monotone in bandwidth, so bisection between 0 and
        the peak per-second rate (at which nothing ever waits) finds it; the
        answer is an upper bound within ``rel_tol`` of the true minimum.
        """
        if self.peak <= 0:
            return 0.0
        if target_s <= 0:
            return self.peak
        lo, hi = 0.0, self.peak
        while hi - lo > rel_tol * hi:
            mid = (lo + hi) / 2
            if self.within_target(mid, target_s) >= fraction - 1e-12:
                hi = mid
            else:
                lo = mid
        return hi


def within_target(arrivals: np.ndarray, bandwidth: float, target_s: float) -> float:
    return Workload(arrivals).within_target(bandwidth, target_s)


def required_bandwidth(arrivals: np.ndarray, target_s: float, fraction: float = 1.0,
                       rel_tol: float = 1e-3) -> float:
    return Workload(arrivals).required_bandwidth(target_s, fraction, rel_tol)
