"""Storage for a retention window: journal plus base images.

Retention policy modelled (the retention service's shape): every
``base_every_days`` a base image of each volume is synthesized; the journal
is kept from the oldest base still needed. To rebuild any point inside a
window of W days you need the newest base at or before that point, so the
store holds ceil(W / base_every) + 1 bases and the journal of
W + base_every days. A growth factor scales the churn and the disks.
"""

from __future__ import annotations

import math

import numpy as np

DAY = 86400


def window_journal(stored_per_s: np.ndarray, covered: np.ndarray, days: float) -> tuple[float, bool]:
    """Bytes of journal for ``days`` of history: the busiest such window if the profile is that long,
    else the average covered day scaled up (the boolean says it was extrapolated)."""
    w = int(days * DAY)
    cov = int(covered.sum())
    if cov == 0:
        return 0.0, True
    if len(stored_per_s) >= w and w > 0:
        c = np.concatenate(([0.0], np.cumsum(stored_per_s)))
        return float((c[w:] - c[:-w]).max()), False
    return float(stored_per_s.sum()) / cov * w, True


def retention_storage(stored_per_s: np.ndarray, covered: np.ndarray, volume_size: int, *,
                      window_days: float, base_every_days: float, base_ratio: float,
                      growth: float) -> dict:
    """Bytes needed for the window, split into journal and bases, before and after growth."""
    if window_days <= 0 or base_every_days <= 0:
        raise ValueError("retention window and base interval must be positive numbers of days")
    kept_days = window_days + base_every_days
    journal, extrapolated = window_journal(stored_per_s, covered, kept_days)
    n_bases = math.ceil(window_days / base_every_days) + 1
    bases = n_bases * volume_size * base_ratio
    total = journal + bases
    return {
        "window_days": window_days, "base_every_days": base_every_days, "journal_days": kept_days,
        "journal_bytes": journal, "journal_extrapolated": extrapolated,
        "bases": n_bases, "base_bytes": bases, "volume_size": volume_size,
        "total_bytes": total, "growth": growth, "total_with_growth": total * (1 + growth),
    }
