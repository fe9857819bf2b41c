"""The whole analysis on synthetic profiles with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from agent.profile import synthetic as syn
from agent.profile.format import ProfileError
from agent.profile.reader import read_profile
from services.analyzer.analysis import MBIT, AnalysisParams, analyze_profiles
from services.analyzer.load import find_spikes
from services.analyzer.series import server_series
from services.analyzer.storage import retention_storage

from .conftest import START

MB = 1e6


def _run(paths, **params):
    return analyze_profiles([read_profile(p) for p in paths], AnalysisParams(**params))


def test_constant_profile_load_and_bandwidth(make_profile):
    n, rate = 6 * 3600, 4 * MB
    p = make_profile("const", syn.constant(n, rate), write_size=64 << 10, compress_ratio=0.4)
    res = _run([p], rpo_targets_min=[15, 60], pipeline_latency_s=0, growth=0.5)
    s = res.to_dict()["total"]
    ld = s["load"]
    assert ld["avg_rate"] == pytest.approx(rate) and ld["p99_rate"] == pytest.approx(rate)
    assert ld["avg_iops"] == pytest.approx(np.ceil(rate / 65536))
    assert ld["daily_churn"] == pytest.approx(rate * 86400)
    assert s["compression"]["ratio"] == pytest.approx(0.4, rel=1e-3) and s["compression"]["source"] == "measured"
    wire = s["bandwidth"]["avg_wire_mbps"]
    assert wire < rate / MBIT * 0.45  # compression applied before the (small) overheads
    for need in s["bandwidth"]["needed"]:
        t = need["rpo_target_min"] * 60
        assert need["mbps_100"] == pytest.approx(wire * (1 - t / n), rel=2e-3)
        assert need["mbps_90"] == pytest.approx(wire * (1 - t / (0.9 * n)), rel=2e-3)
        assert need["mbps_100_with_growth"] == pytest.approx(need["mbps_100"] * 1.5)
    assert s["spike_count"] == 0


def test_stages_show_compression_and_encryption(make_profile):
    p = make_profile("c", syn.constant(3600, 2 * MB), write_size=4096, compress_ratio=0.5)
    st = {x["stage"]: x for x in _run([p]).to_dict()["total"]["bandwidth"]["stages"]}
    raw, z = st["raw payload + framing"], st["+ zstd (measured ratio)"]
    enc, tcp = st["+ AES-GCM batch encryption"], st["+ TCP/IP headers (on the wire)"]
    # 4 KiB writes: framing adds ~42 B per record to raw and compressed payloads alike
    assert z["avg_mbps"] / raw["avg_mbps"] == pytest.approx((2048 + 42) / (4096 + 42), rel=0.01)
    assert z["avg_mbps"] < enc["avg_mbps"] < z["avg_mbps"] * 1.001  # 28 B per 1 MiB batch
    assert tcp["avg_mbps"] == pytest.approx(st["+ TLS records"]["avg_mbps"] * (1 + 52 / 1448))
    assert tcp["mbps_100"] > z["mbps_100"]


def test_whatif_table_is_monotone_and_centered(make_profile):
    p = make_profile("b", syn.periodic_bursts(86400, 1 * MB, 30 * MB, 3600, 300))
    s = _run([p], bandwidth_mbps=40).to_dict()["total"]
    rows = s["whatif"]
    assert [r["change_pct"] for r in rows] == [-20, -10, 0, 10, 20]
    assert [r["mbps"] for r in rows] == pytest.approx([32, 36, 40, 44, 48])
    assert rows[2]["p99_s"] == s["rpo"]["p99_s"]
    p99 = [r["p99_s"] for r in rows]
    assert all(a >= b for a, b in zip(p99, p99[1:])) and p99[0] > p99[-1]
    assert all(rows[i]["within_target"]["15"] <= rows[i + 1]["within_target"]["15"] for i in range(4))
    # 24 hourly bursts, each found at its hour
    assert s["spike_count"] == 24
    assert len(s["spikes"]) == 20  # the report keeps the 20 largest
    assert all((x["start_unix"] - START) % 3600 == 0 and x["seconds"] == 300 for x in s["spikes"])


def test_single_spike_found_at_its_time_with_its_rpo(make_profile):
    at, x = 7200 + 60 * 17, 3000 * MB
    p = make_profile("s", syn.single_spike(4 * 3600, 0.5 * MB, at, x, 60), compress_ratio=1.0)
    s = _run([p], bandwidth_mbps=100, pipeline_latency_s=0, encryption=False).to_dict()["total"]
    assert s["spike_count"] == 1
    sp = s["spikes"][0]
    assert sp["start_unix"] == START + at and sp["seconds"] == 60
    assert sp["bytes"] == pytest.approx(x + 0.5 * MB * 60, rel=1e-6)
    # 3 GB at 12.5 MB/s (minus base load) takes ~4 min to drain; the RPO peak is in that window
    assert 150 < sp["max_rpo_s"] < 300
    assert sp["max_rpo_s"] == pytest.approx(s["rpo"]["max_s"])


def test_storage_known_answer():
    day = 86400
    stored = np.full(2 * day, 1000.0)
    covered = np.ones(2 * day, bool)
    st = retention_storage(stored, covered, 10**9, window_days=7, base_every_days=7, base_ratio=0.5, growth=0.25)
    assert st["journal_extrapolated"] and st["journal_bytes"] == pytest.approx(1000 * 14 * day)
    assert st["bases"] == 2 and st["base_bytes"] == pytest.approx(10**9)
    assert st["total_with_growth"] == pytest.approx((1000 * 14 * day + 10**9) * 1.25)
    # a profile longer than the kept journal: the busiest window, not the average
    stored = np.concatenate([np.full(3 * day, 10.0), np.full(day, 100.0), np.full(3 * day, 10.0)])
    st = retention_storage(stored, np.ones(len(stored), bool), 0, window_days=1, base_every_days=1,
                           base_ratio=1, growth=0)
    assert not st["journal_extrapolated"]
    assert st["journal_bytes"] == pytest.approx(110 * day)
    with pytest.raises(ValueError, match="positive"):
        retention_storage(stored, covered, 0, window_days=0, base_every_days=1, base_ratio=1, growth=0)


def test_servers_and_total(make_profile):
    a = make_profile("a", syn.constant(3600, 1 * MB), server="web1", volume_size=10**10)
    b = make_profile("b", syn.constant(3600, 3 * MB), server="db1", start=START + 1800, volume_size=10**10)
    d = _run([a, b], bandwidth_mbps=80, disk_size_gb=5).to_dict()
    names = [s["name"] for s in d["servers"]]
    assert names == ["web1", "db1"]
    tot = d["total"]
    assert tot["load"]["span_seconds"] == 5400
    assert tot["load"]["max_rate"] == pytest.approx(4 * MB)
    assert tot["storage"]["volume_size"] == 2 * 10**10
    # the link is shared: each server is evaluated at its churn share of it
    assert d["servers"][0]["bandwidth"]["evaluated_mbps"] == pytest.approx(80 * 0.25)
    assert tot["bandwidth"]["evaluated_mbps"] == 80


def test_same_server_files_merge_and_overlaps_are_refused(make_profile):
    a = make_profile("a1", syn.constant(100, MB), server="web1")
    b = make_profile("a2", syn.constant(100, MB), server="web1", start=START + 200)
    c = make_profile("a3", syn.constant(100, MB), server="web1", start=START + 50)
    s = server_series([read_profile(a), read_profile(b)])
    assert len(s) == 1 and len(s[0]) == 300 and s[0].covered_seconds == 200
    res = _run([a, b])
    assert any("not covered" in w for w in res.warnings)
    with pytest.raises(ProfileError, match="also covers"):
        server_series([read_profile(a), read_profile(c)])
    # two volumes of one server cover the same seconds: summed, not refused
    v2 = make_profile("v2", syn.constant(100, MB), server="web1", volume="disk1")
    both = server_series([read_profile(a), read_profile(v2)])
    assert len(both) == 1 and both[0].write_bytes.max() == pytest.approx(2 * MB)


def test_no_samples_uses_assumed_ratio_and_says_so(make_profile):
    p = make_profile("t", syn.constant(600, MB), sample_fraction=0)
    res = _run([p], assumed_ratio=0.7)
    comp = res.to_dict()["total"]["compression"]
    assert comp == {**comp, "ratio": 0.7, "source": "assumed"}
    assert any("no compressibility samples" in w for w in res.warnings)


def test_find_spikes_ignores_steady_load(make_profile):
    p = make_profile("n", syn.business_server(86400, 2 * MB, seed=5, batch_rate_factor=1.0))
    spikes, n = find_spikes(server_series([read_profile(p)])[0])
    assert n == 0 and spikes == []


def test_params_validation():
    with pytest.raises(ValueError):
        AnalysisParams(rpo_targets_min=[0])
    with pytest.raises(ValueError):
        AnalysisParams(compress_ratio=1.5)
    assert AnalysisParams(rpo_targets_min=[60, 15, 15]).rpo_targets_min == [15, 60]
    p = AnalysisParams(rpo_targets_min=[60, 15], primary_rpo_min=45)
    assert p.rpo_targets_min == [15, 45, 60] and p.primary_rpo_min == 45


def test_idle_server_and_empty_profile(make_profile, tmp_path):
    idle = make_profile("idle", np.zeros(3600))
    d = _run([idle]).to_dict()["total"]
    assert d["load"]["avg_rate"] == 0 and d["bandwidth"]["needed"][0]["mbps_100"] == 0
    assert d["rpo"]["max_s"] == pytest.approx(2.0)  # only the pipeline latency
    from agent.profile.format import Header
    from agent.profile.writer import ProfileWriter

    ProfileWriter(tmp_path / "empty", Header("new")).close()
    with pytest.raises(ProfileError, match="no records yet"):
        _run([tmp_path / "empty"])
