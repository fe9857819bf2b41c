"""The whole capacity-planning analysis: profiles in, one result (per server and total) out.

Used alike by the CLI, the HTML report and the HTTP route. Bandwidths are
bytes/s internally; the CLI and API speak Mbit/s (what WAN links are sold in).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
from pydantic import BaseModel, Field, field_validator, model_validator

from agent.profile.reader import Profile
from services.analyzer import load, queue, storage, wire
from services.analyzer.series import Series, server_series, total_series

MBIT = 1e6 / 8  # bytes/s per Mbit/s
WHATIF = (-20, -10, 0, 10, 20)


class AnalysisParams(BaseModel):
    bandwidth_mbps: float | None = Field(None, gt=0, description="WAN bandwidth to evaluate (Mbit/s); "
                                         "default: what the first RPO target needs 100% of the time")
    rpo_targets_min: list[float] = Field([15, 30, 60], description="RPO targets in minutes")
    primary_rpo_min: float | None = Field(None, gt=0, description="the target that sets the default bandwidth "
                                          "and the compression/encryption table; default: the smallest")
    compress_ratio: float | None = Field(None, gt=0, le=1, description="zstd size/raw size; default: measured")
    assumed_ratio: float = Field(1.0, gt=0, le=1, description="ratio used when a profile has no samples")
    encryption: bool = True
    pipeline_latency_s: float = Field(2.0, ge=0, description="batching + round trip + ack, added to queueing RPO")
    retention_days: float = Field(7.0, gt=0)
    base_every_days: float = Field(7.0, gt=0)
    base_fill: float = Field(1.0, gt=0, le=1, description="fraction of each disk a base image holds")
    disk_size_gb: float | None = Field(None, gt=0, description="disk size when the profile does not know it")
    growth: float = Field(0.3, ge=0, le=10, description="growth factor applied to bandwidth and storage")
    spike_factor: float = Field(4.0, gt=1)

    @field_validator("rpo_targets_min")
    @classmethod
    def _targets(cls, v: list[float]) -> list[float]:
        if not v or any(t <= 0 for t in v):
            raise ValueError("give at least one RPO target, every one > 0 minutes")
        return sorted(set(v))

    @model_validator(mode="after")
    def _primary(self) -> "AnalysisParams":
        if self.primary_rpo_min is None:
            self.primary_rpo_min = self.rpo_targets_min[0]
        elif self.primary_rpo_min not in self.rpo_targets_min:
            self.rpo_targets_min = sorted([*self.rpo_targets_min, self.primary_rpo_min])
        return self


@dataclass
class SeriesResult:
    """Result for one server or the total; ``summary`` is JSON-able, the arrays feed the plots."""

    name: str
    summary: dict
    wire: np.ndarray
    rpo: np.ndarray
    series: Series
    curve: list[dict] = field(default_factory=list)


@dataclass
class Analysis:
    params: AnalysisParams
    results: list[SeriesResult]  # servers, then total (when there is more than one server)
    warnings: list[str]

    def to_dict(self) -> dict:
        return {"params": self.params.model_dump(), "warnings": self.warnings,
                "servers": [r.summary for r in self.results if r.name != "total" or len(self.results) == 1],
                "total": self.results[-1].summary}


def iso(t: int) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def analyze_profiles(profiles: list[Profile], params: AnalysisParams) -> Analysis:
    """Analyze each server, and their total when there are several.

    A bandwidth given by the user is the shared link: the total is evaluated
    at it, each server at a share proportional to its average churn (what a
    fair-share shipper would give it). Without one, each part is evaluated
    at what its first RPO target needs.
    """
    servers = server_series(profiles)
    warnings = [w for s in servers for w in s.warnings]
    parts = servers + ([total_series(servers)] if len(servers) > 1 else [])
    all_bytes = float(parts[-1].write_bytes.sum()) or 1.0
    results = []
    for s in parts:
        bw = params.bandwidth_mbps
        if bw is not None and s.name != "total" and len(parts) > 1:
            bw = bw * float(s.write_bytes.sum()) / all_bytes
        r = analyze_series(s, params, bw)
        results.append(r)
        warnings += r.summary["notes"]
    return Analysis(params, results, warnings)


def analyze_series(s: Series, p: AnalysisParams, bandwidth_mbps: float | None = None) -> SeriesResult:
    notes: list[str] = []
    measured = s.compress_ratio
    ratio, was_measured = wire.clamp_ratio(measured, p.assumed_ratio)
    if p.compress_ratio is not None:
        ratio = p.compress_ratio
    elif not was_measured:
        notes.append(f"{s.name}: no compressibility samples (imported trace?); assumed zstd ratio {ratio:.2f}")
    model = wire.WireModel(ratio, True, p.encryption, p.encryption, True)
    on_wire = model.wire(s)
    w = queue.Workload(on_wire, s.covered)
    cov = s.covered if s.covered.any() else np.ones(len(s), bool)
    lat = p.pipeline_latency_s
    targets_s = [t * 60 for t in p.rpo_targets_min]

    needed = []
    for t in targets_s:
        q = max(t - lat, 0.0)
        b100, b90 = w.required_bandwidth(q, 1.0), w.required_bandwidth(q, 0.9)
        needed.append({"rpo_target_min": t / 60, "mbps_100": b100 / MBIT, "mbps_90": b90 / MBIT,
                       "mbps_100_with_growth": b100 * (1 + p.growth) / MBIT,
                       "mbps_90_with_growth": b90 * (1 + p.growth) / MBIT})
    primary = next(n for n in needed if n["rpo_target_min"] == p.primary_rpo_min)
    chosen = bandwidth_mbps or primary["mbps_100"] or 0.001  # an idle server still gets a finite link
    bw = chosen * MBIT
    rpo = queue.rpo_series(on_wire, bw) + lat if len(on_wire) else np.zeros(0)

    def rpo_view(b: float) -> dict:
        full = queue.rpo_series(on_wire, b) + lat
        r = full[cov]  # statistics over observed time only
        within = {f"{t / 60:g}": w.within_target(b, max(t - lat, 0.0)) for t in targets_s}
        return {"mbps": b / MBIT, "p50_s": float(np.percentile(r, 50)), "p90_s": float(np.percentile(r, 90)),
                "p95_s": float(np.percentile(r, 95)), "p99_s": float(np.percentile(r, 99)),
                "max_s": float(r.max()), "worst_at": iso(s.start + int(np.argmax(full))), "within_target": within}

    whatif = [{"change_pct": c, **rpo_view(bw * (1 + c / 100))} for c in WHATIF]
    stages = []
    for label, m in model.stages():
        wl = queue.Workload(m.wire(s), s.covered)
        q = max(p.primary_rpo_min * 60 - lat, 0.0)
        stages.append({"stage": label, "avg_mbps": float(wl.a[cov].mean()) / MBIT,
                       "mbps_100": wl.required_bandwidth(q, 1.0) / MBIT})
    if stages and stages[0]["avg_mbps"] > 0:
        for st in stages:
            st["vs_raw"] = st["avg_mbps"] / stages[0]["avg_mbps"]

    vsize = s.volume_size or int((p.disk_size_gb or 0) * 1e9)
    if not vsize:
        notes.append(f"{s.name}: disk size unknown; base images are left out of storage (give --disk-size)")
    store = storage.retention_storage(
        wire.WireModel(ratio, True, p.encryption, False, False).stored(s), s.covered, vsize,
        window_days=p.retention_days, base_every_days=p.base_every_days,
        base_ratio=p.base_fill * ratio, growth=p.growth)
    if store["journal_extrapolated"]:
        notes.append(f"{s.name}: profile covers {s.covered_seconds / 86400:.2f} days, less than the "
                     f"{store['journal_days']:g} days of journal kept; journal size extrapolated from the average day")

    spikes, n_spikes = load.find_spikes(s, p.spike_factor)
    spike_rows = []
    for sp in spikes:
        a = sp.start - s.start
        drain = rpo[a: a + sp.seconds + 3600]
        spike_rows.append({"start": iso(sp.start), "start_unix": sp.start, "seconds": sp.seconds,
                           "bytes": sp.bytes, "peak_rate": sp.peak_rate, "mean_rate": sp.mean_rate,
                           "max_rpo_s": float(drain.max()) if len(drain) else 0.0})
    gaps = len(s) - s.covered_seconds
    if gaps:
        notes.append(f"{s.name}: {gaps} s of the {len(s)} s span are not covered by any profile record "
                     "(recorder not running); counted as zero load")

    summary = {
        "name": s.name, "volumes": s.volumes, "sources": s.sources,
        "start": iso(s.start), "end": iso(s.start + len(s)),
        "load": load.churn_stats(s),
        "compression": {"ratio": ratio, "measured": measured, "sampled_bytes": s.sample_raw,
                        "source": "given" if p.compress_ratio is not None else
                        "measured" if was_measured else "assumed"},
        "bandwidth": {"needed": needed, "evaluated_mbps": chosen, "avg_wire_mbps": float(on_wire[cov].mean()) / MBIT,
                      "stages": stages},
        "rpo": rpo_view(bw), "whatif": whatif,
        "storage": store, "spikes": spike_rows, "spike_count": n_spikes, "notes": notes,
    }
    return SeriesResult(s.name, summary, on_wire, rpo, s, curve(w, lat, cov))


def curve(w: queue.Workload, lat: float, cov: np.ndarray, points: int = 24) -> list[dict]:
    """Bandwidth-vs-RPO curve (statistics over observed seconds) from the average wire rate up to the peak."""
    if w.peak <= 0:
        return []
    lo = max(float(w.a.mean()) * 1.01, w.peak / 1000)
    out = []
    for b in np.geomspace(lo, w.peak, points):
        r = (queue.rpo_series(w.a, b) + lat)[cov]
        out.append({"mbps": b / MBIT, "p90_s": float(np.percentile(r, 90)),
                    "p99_s": float(np.percentile(r, 99)), "max_s": float(r.max())})
    return out
