"""Terminal summary of an analysis (rich tables)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from services.analyzer.analysis import Analysis


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1000
    return f"{n:.1f} PB"


def human_rate(bps: float) -> str:
    return f"{bps * 8 / 1e6:,.1f} Mb/s"


def human_secs(s: float) -> str:
    if s < 120:
        return f"{s:.0f}s"
    if s < 7200:
        return f"{s / 60:.1f}m"
    return f"{s / 3600:.1f}h"


def render(analysis: Analysis, console: Console | None = None) -> None:
    c = console or Console()
    p = analysis.params
    c.rule("[bold]Dialback capacity plan")
    load = Table(title="Protection load (write churn)")
    for col in ("server", "span", "avg", "p95", "p99", "p99 1-min", "max", "per day"):
        load.add_column(col, justify="right" if col != "server" else "left")
    shape = Table(title="Workload shape")
    for col in ("server", "IOPS avg", "IOPS p99", "avg write", "overwrite", "zstd ratio", "spikes"):
        shape.add_column(col, justify="right" if col != "server" else "left")
    for r in analysis.results:
        s, ld = r.summary, r.summary["load"]
        comp = s["compression"]
        load.add_row(r.name, human_secs(ld["span_seconds"]), human_rate(ld["avg_rate"]), human_rate(ld["p95_rate"]),
                     human_rate(ld["p99_rate"]), human_rate(ld["p99_minute_rate"]), human_rate(ld["max_rate"]),
                     human_bytes(ld["daily_churn"]))
        shape.add_row(r.name, f"{ld['avg_iops']:.0f}", f"{ld['p99_iops']:.0f}", human_bytes(ld["avg_write_size"]),
                      f"{ld['overwrite_fraction']:.0%}", f"{comp['ratio']:.2f} {comp['source']}",
                      str(s["spike_count"]))
    c.print(load)
    c.print(shape)

    need = Table(title=f"WAN bandwidth needed, Mbit/s (RPO within target 100% / 90% of the time; "
                       f"pipeline latency {p.pipeline_latency_s:g} s included)")
    for col in ("server", "RPO target", "100%", "90%", f"100% +{p.growth:.0%}", f"90% +{p.growth:.0%}"):
        need.add_column(col, justify="right" if col != "server" else "left")
    for r in analysis.results:
        for i, n in enumerate(r.summary["bandwidth"]["needed"]):
            mark = " *" if n["rpo_target_min"] == p.primary_rpo_min else ""
            need.add_row(r.name if i == 0 else "", f"{n['rpo_target_min']:g} min{mark}", f"{n['mbps_100']:,.2f}",
                         f"{n['mbps_90']:,.2f}", f"{n['mbps_100_with_growth']:,.2f}",
                         f"{n['mbps_90_with_growth']:,.2f}", end_section=i == len(r.summary["bandwidth"]["needed"]) - 1)
    c.print(need)

    for r in analysis.results:
        s = r.summary
        w = Table(title=f"{r.name}: RPO at {s['bandwidth']['evaluated_mbps']:,.2f} Mbit/s and what-if")
        key = f"{p.primary_rpo_min:g}"
        for col in ("change", "Mbit/s", "p50", "p90", "p99", "max", "worst (UTC)", f"<= {key} min"):
            w.add_column(col, justify="right")
        for row in s["whatif"]:
            w.add_row(f"{row['change_pct']:+d}%", f"{row['mbps']:,.2f}", human_secs(row["p50_s"]),
                      human_secs(row["p90_s"]), human_secs(row["p99_s"]), human_secs(row["max_s"]),
                      row["worst_at"][5:16], f"{row['within_target'][key]:.1%}")
        c.print(w)
        st = Table(title=f"{r.name}: what compression and encryption change (RPO {p.primary_rpo_min:g} min, 100%)")
        for col in ("stage", "avg Mbit/s", "needed Mbit/s", "vs raw"):
            st.add_column(col, justify="right" if col != "stage" else "left")
        for row in s["bandwidth"]["stages"]:
            st.add_row(row["stage"], f"{row['avg_mbps']:,.2f}", f"{row['mbps_100']:,.2f}", f"{row.get('vs_raw', 1):.3f}")
        c.print(st)
        sto = s["storage"]
        c.print(f"[bold]{r.name}: storage[/] for {sto['window_days']:g} days retention, a base every "
                f"{sto['base_every_days']:g} days: journal {human_bytes(sto['journal_bytes'])} "
                f"({sto['journal_days']:g} days{', extrapolated' if sto['journal_extrapolated'] else ''}) + "
                f"{sto['bases']} bases {human_bytes(sto['base_bytes'])} = {human_bytes(sto['total_bytes'])}; "
                f"with growth +{sto['growth']:.0%}: [bold]{human_bytes(sto['total_with_growth'])}[/]")
        if s["spikes"]:
            sp = Table(title=f"{r.name}: spikes ({s['spike_count']} in all; the 10 largest)")
            for col in ("start", "duration", "bytes", "peak", "mean", "max RPO after"):
                sp.add_column(col, justify="right")
            for row in sorted(s["spikes"], key=lambda x: -x["bytes"])[:10]:
                sp.add_row(row["start"], human_secs(row["seconds"]), human_bytes(row["bytes"]),
                           human_rate(row["peak_rate"]), human_rate(row["mean_rate"]), human_secs(row["max_rpo_s"]))
            c.print(sp)
    for wmsg in analysis.warnings:
        c.print(f"[yellow]note:[/] {wmsg}")
