"""`dialback protect`, `dialback agent status`, `dialback bookmark`."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

console = Console()


def _control_default() -> str:
    port = os.environ.get("DIALBACK_AGENT_CONTROL_PORT", "7450")
    return os.environ.get("DIALBACK_AGENT_CONTROL_URL", f"http://127.0.0.1:{port}")


def protect(
    ingest: str = typer.Option(..., help="ingest base URL: https://HOST:PORT (http:// only to 127.0.0.1)"),
    ingest_ca_file: Optional[Path] = typer.Option(
        None, envvar="DIALBACK_AGENT_INGEST_CA_FILE",
        help="PEM CA bundle ingest's certificate must chain to (default: certifi's bundle, or $SSL_CERT_FILE)"),
    ingest_pin: list[str] = typer.Option(
        [], envvar="DIALBACK_AGENT_INGEST_PINS",
        help="SHA-256 of ingest's public key or certificate (`dialback tls pin CERT.pem`); repeat for rotation"),
    token: str = typer.Option("", envvar="DIALBACK_AGENT_TOKEN", help="tenant token for ingest (or --credentials)"),
    credentials: Optional[Path] = typer.Option(
        None, envvar="DIALBACK_AGENT_CREDENTIALS_FILE",
        help="credentials file from `dialback tenant create` (token + transport key; batches are then sealed)"),
    group: str = typer.Option(..., help="protection (consistency) group id"),
    volume: list[str] = typer.Option(..., help="NAME=PATH of a disk file or block device; repeat for more"),
    spool: Path = typer.Option(..., help="spool directory (one subdirectory per group)"),
    nbd_port: int = typer.Option(10809, help="NBD port on 127.0.0.1"),
    control_port: int = typer.Option(7450, help="control API port on 127.0.0.1"),
    bandwidth: Optional[int] = typer.Option(None, help="shipping limit in bytes/s"),
    spool_limit: Optional[int] = typer.Option(None, help="spool overflow threshold in bytes"),
    baseline: bool = typer.Option(False, help="the disks equal a point Dialback holds (failback of a "
                                              "failover): no initial copy, ship only new writes"),
    reprotect: bool = typer.Option(False, help="ingest knows the group from another spool (emptied spool, "
                                               "reinstalled agent): take it over with this one, numbering after "
                                               "what ingest holds and copying the disks again"),
) -> None:
    """Protect volumes: register, sync, serve them over NBD and ship every write (foreground)."""
    from agent.config import AgentSettings
    from agent.runtime import run_agent

    logging.basicConfig(level=os.environ.get("DIALBACK_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    extra = {"spool_limit_bytes": spool_limit} if spool_limit else {}
    try:
        if not token and credentials is None:
            raise ValueError("give --credentials FILE (from `dialback tenant create`) or --token")
        settings = AgentSettings(ingest=ingest, token=token, credentials_file=credentials, group=group,
                                 volumes=",".join(volume), spool_dir=spool, nbd_port=nbd_port,
                                 control_port=control_port, bandwidth=bandwidth, baseline=baseline,
                                 reprotect=reprotect, ingest_ca_file=ingest_ca_file,
                                 ingest_pins=",".join(ingest_pin), **extra)
    except (ValidationError, ValueError) as err:
        console.print(f"[red]invalid settings:[/red] {err}")
        raise typer.Exit(2) from err
    try:
        run_agent(settings)
    except (OSError, ValueError) as err:  # ValueError: e.g. a bad credentials file
        console.print(f"[red]agent stopped:[/red] {err}")
        raise typer.Exit(1) from err


def _get(url: str) -> httpx.Response:
    try:
        return httpx.get(url, timeout=10)
    except httpx.TransportError as err:
        console.print(f"[red]cannot reach the agent at {url}:[/red] {err}. Is `dialback protect` running?")
        raise typer.Exit(1) from err


def status(control: str = typer.Option(None, help="agent control URL (default http://127.0.0.1:7450)")) -> None:
    """Show protection state: sequences, RPO, spool, sync progress, alarms."""
    resp = _get(f"{(control or _control_default()).rstrip('/')}/status")
    resp.raise_for_status()
    data = resp.json()
    table = Table(title="Dialback agent")
    for col in ("group", "volumes", "last seq", "acked", "RPO s", "spool", "sync", "alarms"):
        table.add_column(col)
    for name, g in data["groups"].items():
        alarms = "; ".join(f"{k}: {v}" for k, v in g["alarms"].items()) or "-"
        table.add_row(name, ", ".join(v["volume"] for v in g["volumes"]), str(g["last_sequence"]),
                      str(g["acked_through"]), f"{g['rpo_seconds']:.1f}",
                      f"{g['spool_records']} rec / {g['spool_bytes'] / 1e6:.1f} MB",
                      f"{g['sync_progress'] * 100:.0f}%", alarms)
    console.print(table)


def bookmark(
    name: str = typer.Argument(..., help="bookmark name (unique in the group)"),
    group: str = typer.Option(..., help="protection group"),
    fsfreeze: Optional[str] = typer.Option(None, help="mount point to freeze around the bookmark"),
    hook: Optional[str] = typer.Option(None, help="script run with 'freeze' before and 'thaw' after"),
    control: str = typer.Option(None, help="agent control URL (default http://127.0.0.1:7450)"),
) -> None:
    """Take a named, optionally application-consistent, recovery point."""
    url = f"{(control or _control_default()).rstrip('/')}/v1/bookmarks"
    try:
        resp = httpx.post(url, json={"group": group, "name": name, "fsfreeze": fsfreeze, "hook": hook}, timeout=180)
    except httpx.TransportError as err:
        console.print(f"[red]cannot reach the agent at {url}:[/red] {err}. Is `dialback protect` running?")
        raise typer.Exit(1) from err
    if resp.status_code != 200:
        console.print(f"[red]bookmark refused ({resp.status_code}):[/red] {resp.json().get('detail', resp.text)}")
        raise typer.Exit(1)
    out = resp.json()
    console.print(f"bookmark [bold]{out['name']}[/bold] in group {out['group']} at sequence {out['sequence']}")


def register(app: typer.Typer) -> None:
    app.command("protect")(protect)
    app.command("bookmark")(bookmark)
    agent_app = typer.Typer(help="The local data tap.", no_args_is_help=True)
    agent_app.command("status")(status)
    from agent.profile.cli import register_profile  # `dialback agent profile`: the tap in profile-only mode

    register_profile(agent_app)
    app.add_typer(agent_app, name="agent")
