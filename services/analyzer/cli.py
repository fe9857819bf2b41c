"""`dialback analyze`, `dialback profile-import` and `dialback profile-synth`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from agent.profile.format import Header, ProfileError
from agent.profile.reader import read_profile
from services.analyzer.analysis import AnalysisParams, analyze_profiles

err = Console(stderr=True)
DEFAULT_TARGETS = (15.0, 30.0, 60.0)
import_app = typer.Typer(help="Turn existing traces into Dialback profiles.", no_args_is_help=True)


def _fail(msg: str) -> None:
    err.print(f"[red]error:[/] {msg}")
    raise typer.Exit(2)


def analyze(
    profiles: list[Path] = typer.Argument(..., help="profile files (one or more per server)"),
    bandwidth: Optional[float] = typer.Option(None, "--bandwidth", help="WAN bandwidth to evaluate, Mbit/s"),
    rpo_target: list[float] = typer.Option([], "--rpo-target",
                                           help="RPO target in minutes, added to 15/30/60 (repeat); "
                                                "the first one sets the evaluated bandwidth"),
    html_out: Optional[Path] = typer.Option(None, "--html", help="also write an HTML report with plots here"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the full result as JSON here"),
    compress_ratio: Optional[float] = typer.Option(None, help="zstd size/raw size to assume instead of the measured one"),
    no_encryption: bool = typer.Option(False, "--no-encryption", help="size for a link without encryption"),
    latency: float = typer.Option(2.0, help="pipeline latency (batching, round trip), seconds"),
    retention_days: float = typer.Option(7.0, help="retention window, days"),
    base_every_days: float = typer.Option(7.0, help="a base image every this many days"),
    disk_size: Optional[float] = typer.Option(None, "--disk-size", help="disk size in GB if the profile lacks it"),
    growth: float = typer.Option(0.3, help="growth factor for bandwidth and storage (0.3 = +30%)"),
) -> None:
    """Capacity plan from workload profiles: load, bandwidth for RPO targets, what-if, storage, spikes."""
    import json

    from pydantic import ValidationError

    from services.analyzer.report_terminal import render

    try:
        params = AnalysisParams(bandwidth_mbps=bandwidth, rpo_targets_min=[*rpo_target, *DEFAULT_TARGETS],
                                primary_rpo_min=rpo_target[0] if rpo_target else None, compress_ratio=compress_ratio,
                                encryption=not no_encryption, pipeline_latency_s=latency,
                                retention_days=retention_days, base_every_days=base_every_days,
                                disk_size_gb=disk_size, growth=growth)
    except ValidationError as e:
        _fail("; ".join(f"--{'-'.join(str(x) for x in d['loc']).replace('_', '-')}: {d['msg']}" for d in e.errors()))
    try:
        loaded = [read_profile(p) for p in profiles]
        result = analyze_profiles(loaded, params)
    except ProfileError as e:
        _fail(str(e))
    render(result)
    if json_out:
        json_out.write_text(json.dumps(result.to_dict(), indent=2))
        err.print(f"JSON written to {json_out}")
    if html_out:
        from services.analyzer.report_html import render_html

        html_out.write_text(render_html(result))
        err.print(f"HTML report written to {html_out}")


@import_app.command("blkparse")
def import_blkparse_cmd(
    file: Path = typer.Argument(..., help="blkparse text output (blkparse -i TRACE > FILE)"),
    out: Path = typer.Option(..., "--out", help="profile file to write (appended to if it exists)"),
    server: Optional[str] = typer.Option(None, help="server name (default: the file name)"),
    start: Optional[int] = typer.Option(None, help="Unix time the trace started (default: file mtime - span)"),
    action: str = typer.Option("Q", help="blktrace action to count: Q (queued) or C (completed)"),
    device: Optional[str] = typer.Option(None, help="only this device, as MAJOR,MINOR (e.g. 8,0)"),
) -> None:
    """Import a blkparse trace as a profile (no compressibility samples: give --compress-ratio to analyze)."""
    from agent.profile.blkparse import import_blkparse_file

    try:
        st = import_blkparse_file(str(file), str(out), server, start, action=action, device=device)
    except ProfileError as e:
        _fail(str(e))
    err.print(f"{st.writes} writes, {st.trims} discards over {st.duration_s:.0f} s -> {st.records} records in {out}")


@import_app.command("frames")
def import_frames_cmd(
    file: Path = typer.Argument(..., help="stream of `u32 length | v1 batch` (journal segment or spool file)"),
    out: Path = typer.Option(..., "--out", help="profile file to write"),
    server: Optional[str] = typer.Option(None, help="server name (default: the file name)"),
) -> None:
    """Import a stream of v1 write batches (with payloads: compressibility is measured)."""
    from agent.profile.frames_import import import_frames_file

    try:
        st = import_frames_file(str(file), str(out), server or file.stem)
    except ProfileError as e:
        _fail(str(e))
    err.print(f"{st.records_in} write records from {st.batches} batches -> {st.records} profile records in {out}")


def profile_synth(
    out: Path = typer.Option(..., "--out", help="profile file to write"),
    shape: str = typer.Option("business", help="business | constant | bursts | spike"),
    days: float = typer.Option(1.0, help="length in days"),
    rate_mbps: float = typer.Option(40.0, "--rate", help="mean write rate, Mbit/s"),
    server: str = typer.Option("synthetic", help="server name"),
    ratio: float = typer.Option(0.5, help="zstd ratio the samples claim"),
    seed: int = typer.Option(0, help="random seed (business shape)"),
) -> None:
    """Write a synthetic workload profile (demos, tests of the analyzer, the replay bench)."""
    from agent.profile import synthetic as syn

    n, rate = int(days * 86400), rate_mbps * 1e6 / 8
    shapes = {"business": lambda: syn.business_server(n, rate, seed),
              "constant": lambda: syn.constant(n, rate),
              "bursts": lambda: syn.periodic_bursts(n, rate / 2, rate * 6, 3600, 600),
              "spike": lambda: syn.single_spike(n, rate, n // 2, rate * 1800, 60)}
    if shape not in shapes:
        _fail(f"unknown shape {shape!r}; choose one of {', '.join(shapes)}")
    if out.exists():
        _fail(f"{out} exists; synthetic profiles are written fresh, remove it or pick another --out")
    start = int(time.time()) - n
    count = syn.write_profile(str(out), Header(server, created_unix=start), start, shapes[shape](),
                              compress_ratio=ratio)
    err.print(f"{count} records ({n} s of {shape} workload) written to {out}")


def serve_analyzer() -> None:
    """Run the analyzer HTTP service on 127.0.0.1 (settings from DIALBACK_* variables)."""
    from services.analyzer.__main__ import main

    main()


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze)
    app.command("serve-analyzer")(serve_analyzer)
    app.command("profile-synth")(profile_synth)
    app.add_typer(import_app, name="profile-import")
