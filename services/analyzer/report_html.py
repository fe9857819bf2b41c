"""Self-contained HTML report: tables plus matplotlib plots embedded as PNG data URIs.

One file a provider can mail to a customer: no scripts, no external assets.
Plots: churn over time, RPO over time at the evaluated bandwidth, and the
bandwidth-vs-RPO curve. Long series are reduced to per-minute (or coarser)
maxima / means so a month-long profile still plots in a second.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import datetime, timezone

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from services.analyzer.analysis import Analysis, SeriesResult  # noqa: E402
from services.analyzer.report_terminal import human_bytes, human_rate, human_secs  # noqa: E402

MAX_POINTS = 2000


def _reduce(values: np.ndarray, how: str) -> tuple[np.ndarray, int]:
    step = 60 * max(1, -(-len(values) // (MAX_POINTS * 60)))  # whole minutes per point
    n = len(values) // step * step
    if n == 0:
        return values.astype(float), 1
    v = values[:n].reshape(-1, step)
    return (v.max(axis=1) if how == "max" else v.mean(axis=1)), step


def _times(start: int, count: int, step: int) -> list[datetime]:
    return [datetime.fromtimestamp(start + i * step, timezone.utc) for i in range(count)]


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _time_axis(ax) -> None:
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(mdates.AutoDateLocator()))
    ax.grid(alpha=0.3)


def plot_churn(results: list[SeriesResult]) -> str:
    fig, ax = plt.subplots(figsize=(11, 3.6))
    for r in results:
        v, step = _reduce(r.series.write_bytes, "mean")
        ax.plot(_times(r.series.start, len(v), step), v * 8 / 1e6, lw=0.8, label=f"{r.name} (mean per {step} s)")
    for r in results[-1:]:  # spikes of the total (or the only server), shaded
        for sp in r.summary["spikes"]:
            a = datetime.fromtimestamp(sp["start_unix"], timezone.utc)
            b = datetime.fromtimestamp(sp["start_unix"] + sp["seconds"], timezone.utc)
            ax.axvspan(a, b, color="orange", alpha=0.25, lw=0)
    ax.set_ylabel("write churn, Mbit/s")
    ax.set_title("Churn over time (spikes shaded)")
    ax.legend(fontsize=8)
    _time_axis(ax)
    return _png(fig)


def plot_rpo(r: SeriesResult, targets_min: list[float]) -> str:
    fig, ax = plt.subplots(figsize=(11, 3.6))
    v, step = _reduce(r.rpo, "max")
    ax.plot(_times(r.series.start, len(v), step), v / 60, lw=0.8, color="tab:red", label=f"RPO (max per {step} s)")
    for t in targets_min:
        ax.axhline(t, ls="--", lw=0.8, color="grey")
        ax.annotate(f"{t:g} min", (0.002, t), xycoords=("axes fraction", "data"), fontsize=8, color="grey")
    ax.set_ylabel("RPO, minutes")
    ax.set_title(f"{r.name}: RPO over time at {r.summary['bandwidth']['evaluated_mbps']:,.2f} Mbit/s")
    ax.legend(fontsize=8)
    _time_axis(ax)
    return _png(fig)


def plot_curve(r: SeriesResult, targets_min: list[float]) -> str:
    fig, ax = plt.subplots(figsize=(7, 4))
    if r.curve:
        x = [c["mbps"] for c in r.curve]
        for key, label in (("max_s", "max"), ("p99_s", "p99"), ("p90_s", "p90")):
            ax.plot(x, [c[key] / 60 for c in r.curve], marker=".", label=f"{label} RPO")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_yscale("symlog", linthresh=1)
    for t in targets_min:
        ax.axhline(t, ls="--", lw=0.8, color="grey")
    ax.axvline(r.summary["bandwidth"]["evaluated_mbps"], color="black", lw=0.8, label="evaluated bandwidth")
    ax.set_xlabel("bandwidth, Mbit/s")
    ax.set_ylabel("RPO, minutes")
    ax.set_title(f"{r.name}: bandwidth vs RPO")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _png(fig)


def plot_sizes(results: list[SeriesResult]) -> str:
    fig, ax = plt.subplots(figsize=(11, 3))
    labels = list(results[0].summary["load"]["write_size_histogram"])
    width = 0.8 / len(results)
    for i, r in enumerate(results):
        counts = list(r.summary["load"]["write_size_histogram"].values())
        total = sum(counts) or 1
        ax.bar([x + i * width for x in range(len(labels))], [c / total for c in counts], width, label=r.name)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(labels))], labels, rotation=45, fontsize=7)
    ax.set_ylabel("share of writes")
    ax.set_title("Write sizes")
    ax.legend(fontsize=8)
    return _png(fig)


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def render_html(analysis: Analysis) -> str:
    p = analysis.params
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Dialback capacity plan</title><style>",
             "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}",
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}",
             ".note{color:#a60}</style></head><body><h1>Dialback capacity plan</h1>",
             f"<p>RPO targets {', '.join(f'{t:g}' for t in p.rpo_targets_min)} min; pipeline latency "
             f"{p.pipeline_latency_s:g} s; growth factor +{p.growth:.0%}; retention {p.retention_days:g} days, "
             f"base every {p.base_every_days:g} days; encryption {'on' if p.encryption else 'off'}.</p>"]
    parts.append("<h2>Protection load</h2>")
    parts.append(_table(
        ["server", "from", "to", "avg", "p95", "p99", "max", "per day", "IOPS avg/p99", "overwrite", "zstd ratio"],
        [[r.name, r.summary["start"], r.summary["end"], *(human_rate(r.summary["load"][k]) for k in
          ("avg_rate", "p95_rate", "p99_rate", "max_rate")), human_bytes(r.summary["load"]["daily_churn"]),
          f"{r.summary['load']['avg_iops']:.0f}/{r.summary['load']['p99_iops']:.0f}",
          f"{r.summary['load']['overwrite_fraction']:.0%}",
          f"{r.summary['compression']['ratio']:.2f} ({r.summary['compression']['source']})"]
         for r in analysis.results]))
    parts.append(plot_churn(analysis.results))
    parts.append(plot_sizes(analysis.results))
    parts.append("<h2>Bandwidth needed (Mbit/s, with growth in brackets)</h2>")
    head = ["server"] + [f"RPO {t:g} min {f}" for t in p.rpo_targets_min for f in ("100%", "90%")]
    parts.append(_table(head, [[r.name] + [f"{n[k]:,.2f} [{n[k + '_with_growth']:,.2f}]"
                                           for n in r.summary["bandwidth"]["needed"] for k in ("mbps_100", "mbps_90")]
                               for r in analysis.results]))
    for r in analysis.results:
        s = r.summary
        parts.append(f"<h2>{html.escape(r.name)}</h2><h3>RPO and what-if</h3>")
        parts.append(_table(["bandwidth", "Mbit/s", "p50", "p90", "p99", "max", "worst at",
                             *[f"within {t:g} min" for t in p.rpo_targets_min]],
                            [[f"{w['change_pct']:+d}%", f"{w['mbps']:,.2f}", human_secs(w["p50_s"]),
                              human_secs(w["p90_s"]), human_secs(w["p99_s"]), human_secs(w["max_s"]), w["worst_at"],
                              *[f"{v:.1%}" for v in w["within_target"].values()]] for w in s["whatif"]]))
        parts.append(plot_rpo(r, p.rpo_targets_min))
        parts.append(plot_curve(r, p.rpo_targets_min))
        parts.append("<h3>Compression and encryption</h3>")
        parts.append(_table(["stage", "avg Mbit/s", f"needed for {p.primary_rpo_min:g} min (100%)", "vs raw"],
                            [[x["stage"], f"{x['avg_mbps']:,.2f}", f"{x['mbps_100']:,.2f}",
                              f"{x.get('vs_raw', 1):.3f}"] for x in s["bandwidth"]["stages"]]))
        st = s["storage"]
        parts.append("<h3>Storage</h3>")
        parts.append(_table(["journal", "journal days", "bases", "base bytes", "total", "with growth"],
                            [[human_bytes(st["journal_bytes"]),
                              f"{st['journal_days']:g}{' (extrapolated)' if st['journal_extrapolated'] else ''}",
                              str(st["bases"]), human_bytes(st["base_bytes"]), human_bytes(st["total_bytes"]),
                              human_bytes(st["total_with_growth"])]]))
        if s["spikes"]:
            parts.append(f"<h3>Spikes ({s['spike_count']} in all)</h3>")
            parts.append(_table(["start", "duration", "bytes", "peak", "mean", "max RPO after"],
                                [[x["start"], human_secs(x["seconds"]), human_bytes(x["bytes"]),
                                  human_rate(x["peak_rate"]), human_rate(x["mean_rate"]), human_secs(x["max_rpo_s"])]
                                 for x in s["spikes"]]))
    for w in analysis.warnings:
        parts.append(f"<p class='note'>note: {html.escape(w)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)

