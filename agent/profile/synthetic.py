"""Synthetic workload profiles with known answers, and a realistic mixed workload.

The shapes the analyzer's math is checked against (constant rate, periodic
bursts, a single spike) and a "business server" workload (diurnal curve,
noise, a nightly batch burst) for demos and the replay bench. Series are
built with numpy and written as profile records, so weeks take seconds.
"""

from __future__ import annotations

import numpy as np

from agent.profile.format import N_BUCKETS, Header, Second
from agent.profile.writer import ProfileWriter

DAY = 86400


def constant(seconds: int, rate: float) -> np.ndarray:
    """``rate`` bytes every second."""
    return np.full(seconds, float(rate))


def periodic_bursts(seconds: int, base: float, burst: float, period: int, length: int, phase: int = 0) -> np.ndarray:
    """``base`` B/s, and ``burst`` B/s for ``length`` s at the start of every ``period`` s (from ``phase``)."""
    t = np.arange(seconds)
    return np.where(((t - phase) % period < length) & (t >= phase), float(burst), float(base))


def single_spike(seconds: int, base: float, at: int, spike_bytes: float, length: int = 1) -> np.ndarray:
    """``base`` B/s plus ``spike_bytes`` spread over ``length`` s starting at second ``at``."""
    s = np.full(seconds, float(base))
    s[at: at + length] += spike_bytes / length
    return s


def business_server(seconds: int, mean_rate: float, seed: int = 0, batch_hour: int = 2,
                    batch_rate_factor: float = 6.0, batch_minutes: int = 40) -> np.ndarray:
    """A plausible server: daytime peak, night trough, lognormal noise, a nightly batch job."""
    rng = np.random.default_rng(seed)
    t = np.arange(seconds)
    hour = (t % DAY) / 3600.0
    diurnal = 1.0 + 0.8 * np.sin((hour - 8.0) / 24.0 * 2 * np.pi)  # peak mid-afternoon
    noise = rng.lognormal(mean=0.0, sigma=0.6, size=seconds)
    s = diurnal * noise
    in_batch = (hour >= batch_hour) & (hour < batch_hour + batch_minutes / 60.0)
    s = np.where(in_batch, s * batch_rate_factor, s)
    return s * (mean_rate / s.mean())


def write_profile(path: str, header: Header, start: int, write_bytes: np.ndarray, *,
                  write_size: int = 64 << 10, compress_ratio: float = 0.5, overwrite_fraction: float = 0.3,
                  sample_fraction: float = 0.05) -> int:
    """Write a series as a profile; returns the number of records written.

    IOPS follow from ``write_size``; the sampled compressed size is
    ``compress_ratio`` of the sampled size; idle seconds become span records.
    """
    wb = np.asarray(write_bytes, dtype=np.float64).round().astype(np.int64)
    if (wb < 0).any():
        raise ValueError("write rates must be >= 0")
    bucket = min(N_BUCKETS - 1, max(0, (write_size - 1).bit_length() - 9))
    n = 0
    with ProfileWriter(path, header, fsync_every_s=10**9) as w:
        idle_from = None
        for i, b in enumerate(wb.tolist()):
            t = start + i
            if b == 0:
                idle_from = t if idle_from is None else idle_from
                continue
            if idle_from is not None:
                w.append(Second(idle_from, t - idle_from))
                n, idle_from = n + 1, None
            iops = max(1, -(-b // write_size))
            hist = [0] * N_BUCKETS
            hist[bucket] = iops
            raw = int(b * sample_fraction)
            w.append(Second(t, 1, iops, b, 0, 0, int(b * overwrite_fraction), raw, int(raw * compress_ratio),
                            tuple(hist)))
            n += 1
        if idle_from is not None:
            w.append(Second(idle_from, start + len(wb) - idle_from))
            n += 1
    return n
