"""Replication-queue math against closed-form answers (constant rate, periodic bursts, single spike)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from agent.profile import synthetic as syn
from services.analyzer.queue import Workload, required_bandwidth, rpo_series, within_target

MB = 1e6


def test_constant_overload_rpo_grows_linearly():
    a, b = 10 * MB, 4 * MB
    rpo = rpo_series(syn.constant(1000, a), b)
    t = np.arange(1000)
    np.testing.assert_allclose(rpo, (t + 1) * (1 - b / a), rtol=1e-9)


def test_constant_rate_under_bandwidth_never_waits():
    rpo = rpo_series(syn.constant(5000, 3 * MB), 3.01 * MB)
    assert rpo.max() == 0.0


@pytest.mark.parametrize("target", [60.0, 900.0, 3600.0])
def test_constant_rate_required_bandwidth(target):
    # Over N seconds at rate a, the worst RPO (at the end) is N (1 - B/a): B = a (1 - T/N) for 100 %;
    # RPO(t) <= T holds for the first T / (1 - B/a) seconds: B = a (1 - T / (0.9 N)) for 90 %.
    n, a = 86400, 7 * MB
    w = Workload(syn.constant(n, a))
    assert w.required_bandwidth(target, 1.0) == pytest.approx(a * (1 - target / n), rel=2e-3)
    assert w.required_bandwidth(target, 0.9) == pytest.approx(a * (1 - target / (0.9 * n)), rel=2e-3)


def test_periodic_bursts_required_bandwidth():
    # Bursts of R B/s for L s every P s: the last byte of a burst leaves at R L / B, aged R L / B - L.
    # RPO <= T everywhere  <=>  B >= R L / (T + L).
    r, length, period, target = 100 * MB, 600, 3600, 900.0
    series = syn.periodic_bursts(86400, 0.0, r, period, length)
    expect = r * length / (target + length)
    got = required_bandwidth(series, target)
    assert got == pytest.approx(expect, rel=0.01)
    assert got >= expect * 0.995  # never optimistic by more than the within-second sampling
    # 90 %: per period, RPO exceeds T for x in (T / (1 - B/R), R L / B); that stretch must be <= 10 % of P.
    def violated(b):
        return max(0.0, r * length / b - target / (1 - b / r)) / period
    lo, hi = 1.0, expect
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if violated(mid) > 0.1 else (lo, mid)
    assert required_bandwidth(series, target, 0.9) == pytest.approx(hi, rel=0.01)
    assert hi < expect  # 90 % of the time is cheaper than always


def test_single_spike_max_rpo_and_required_bandwidth():
    x, at, n = 1000 * MB, 5000, 20000
    series = syn.single_spike(n, 0.0, at, x)
    b = 20 * MB
    rpo = rpo_series(series, b)
    # discrete: at the end of second at+k the oldest unshipped byte is (k+1) B, aged (k+1)(1 - B/X)
    k1 = int(np.ceil(x / b)) - 1
    assert rpo.max() == pytest.approx(k1 * (1 - b / x), rel=1e-9)
    assert int(np.argmax(rpo)) == at + k1 - 1
    assert rpo[: at].max() == 0 and rpo[at + k1 + 1:].max() == 0
    # RPO <= T  <=>  B >= X / (T + 1) in the continuous model
    assert required_bandwidth(series, 99.0) == pytest.approx(x / 100, rel=0.011)


def test_within_target_matches_rpo_series():
    rng = np.random.default_rng(3)
    series = rng.lognormal(size=20000) * MB * np.where(rng.random(20000) < 0.01, 30, 1)
    for b in (1.2 * MB, 1.6 * MB, 2.5 * MB):
        rpo = rpo_series(series, b)
        for t in (5.0, 30.0, 120.0):
            assert within_target(series, b, t) == pytest.approx(float(np.mean(rpo <= t + 1e-9)), abs=2e-4)


def test_scaling_is_exact_so_growth_multiplies_bandwidth():
    series = syn.business_server(20000, 3 * MB, seed=1)
    base = required_bandwidth(series, 300.0, rel_tol=1e-5)
    assert required_bandwidth(series * 1.3, 300.0, rel_tol=1e-5) == pytest.approx(base * 1.3, rel=1e-4)


def test_more_bandwidth_never_hurts():
    series = syn.business_server(30000, 3 * MB, seed=2)
    p99 = [np.percentile(rpo_series(series, b * MB), 99) for b in (3.2, 3.5, 4.0, 5.0, 8.0)]
    assert all(x >= y for x, y in zip(p99, p99[1:])) and p99[0] > p99[-1]


def test_weeks_simulate_in_seconds():
    series = syn.business_server(3 * 7 * 86400, 5 * MB, seed=4)  # three weeks, 1.8 M seconds
    w = Workload(series)
    t0 = time.monotonic()
    need = w.required_bandwidth(900.0)
    rpo_series(series, need)
    elapsed = time.monotonic() - t0
    assert need > series.mean()
    assert elapsed < 20, f"bisection + one RPO series over 3 weeks took {elapsed:.1f}s"


def test_idle_series_needs_nothing():
    assert required_bandwidth(np.zeros(100), 60.0) == 0.0
    assert within_target(np.zeros(100), 1.0, 60.0) == 1.0


def test_gaps_do_not_count_as_time_within_target():
    # 1000 observed seconds at twice the bandwidth, then 9000 unobserved seconds (no load, no data)
    a = np.concatenate([syn.constant(1000, 2 * MB), np.zeros(9000)])
    covered = np.arange(10000) < 1000
    # RPO(t) = (t+1)/2 <= 250 for the first 500 observed seconds only
    assert Workload(a, covered).within_target(1 * MB, 250.0) == pytest.approx(0.5, abs=1e-3)
    # counted over all 10000 s: RPO (t+1)/2 > 250 from t = 500 until the backlog is gone at t = 1999
    assert Workload(a).within_target(1 * MB, 250.0) == pytest.approx(1 - 1500 / 10000, abs=1e-3)
