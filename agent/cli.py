"""`dialback protect`, `dialback agent status|nbd-certs`, `dialback bookmark`."""

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


def _control(control: str | None, group: str | None, token_file: Path | None,
             spool: Path | None = None) -> tuple[httpx.Client, str]:
    """A client for the agent's control API: its Unix socket unless an http(s) URL is given.

    Default socket: <spool_dir>/<group>.control.sock (``spool`` or DIALBACK_AGENT_SPOOL_DIR, ``group`` or
    DIALBACK_AGENT_GROUP); without a group, the only such socket in the spool directory.
    """
    control = control or os.environ.get("DIALBACK_AGENT_CONTROL_URL") or os.environ.get("DIALBACK_AGENT_CONTROL_SOCKET")
    if control and control.startswith(("http://", "https://")):
        token_file = token_file or (Path(os.environ["DIALBACK_AGENT_CONTROL_TOKEN_FILE"])
                                    if os.environ.get("DIALBACK_AGENT_CONTROL_TOKEN_FILE") else None)
        headers = {}
        if token_file is not None:
            from agent.control_token import read_token

            try:
                headers["Authorization"] = f"Bearer {read_token(token_file)}"
            except (OSError, ValueError) as err:
                console.print(f"[red]{err}[/red]")
                raise typer.Exit(1) from err
        return httpx.Client(base_url=control.rstrip("/"), headers=headers, timeout=180), control
    if control:
        path = Path(control)
    else:
        from agent.config import AgentSettings

        try:
            settings = AgentSettings(**({"group": group} if group else {}), **({"spool_dir": spool} if spool else {}))
        except ValidationError as err:
            console.print(f"[red]invalid agent settings in the environment:[/red] {err}")
            raise typer.Exit(2) from err
        path = settings.local_path(settings.control_socket, "control.sock")
        if not group and not path.exists():
            found = sorted(settings.spool_dir.glob("*.control.sock"))
            path = found[0] if len(found) == 1 else path
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), base_url="http://localhost", timeout=180), str(path)


def _call(target: tuple[httpx.Client, str], method: str, path: str, **kw) -> httpx.Response:
    client, where = target
    try:
        with client:
            return client.request(method, path, **kw)
    except httpx.TransportError as err:
        console.print(f"[red]cannot reach the agent at {where}:[/red] {err}. Is `dialback protect` running? "
                      "(give its socket with --control, or --control http://127.0.0.1:PORT for TCP)")
        raise typer.Exit(1) from err


def protect(
    ingest: str = typer.Option(..., help="ingest base URL: https://HOST:PORT (http:// only to 127.0.0.1)"),
    ingest_ca_file: Optional[Path] = typer.Option(
        None, envvar="DIALBACK_AGENT_INGEST_CA_FILE",
        help="PEM CA bundle ingest's certificate must chain to (default: certifi's bundle, or $SSL_CERT_FILE)"),
    ingest_pin: list[str] = typer.Option(
        [], envvar="DIALBACK_AGENT_INGEST_PINS",
        help="SHA-256 of ingest's public key or certificate (`dialback tls pin CERT.pem`); repeat for rotation"),
    token: str = typer.Option("", envvar="DIALBACK_AGENT_TOKEN",
                              help="agent token for ingest (scope ingest; or --credentials)"),
    credentials: Optional[Path] = typer.Option(
        None, envvar="DIALBACK_AGENT_CREDENTIALS_FILE",
        help="credentials file from `dialback tenant create` (token + transport key; batches are then sealed)"),
    group: str = typer.Option(..., help="protection (consistency) group id"),
    volume: list[str] = typer.Option(..., help="NAME=PATH of a disk file or block device; repeat for more"),
    spool: Path = typer.Option(..., help="spool directory (one subdirectory per group)"),
    nbd_socket: Optional[Path] = typer.Option(None, help="NBD Unix socket, 0600 (default SPOOL/GROUP.nbd.sock)"),
    nbd_port: Optional[int] = typer.Option(None, help="also serve NBD on this TCP port of 127.0.0.1 "
                                                      "(needs --nbd-tls-dir)"),
    nbd_tls_dir: Optional[Path] = typer.Option(None, help="server certificates from `dialback agent nbd-certs`: "
                                                          "TCP clients must present a client certificate"),
    control_socket: Optional[Path] = typer.Option(None, help="control API Unix socket (default "
                                                             "SPOOL/GROUP.control.sock)"),
    control_port: Optional[int] = typer.Option(None, help="also serve the control API on this TCP port of "
                                                          "127.0.0.1, with a bearer token (SPOOL/GROUP.control.token)"),
    bookmark_hook: Optional[Path] = typer.Option(None, help="executable run with 'freeze' before and 'thaw' "
                                                            "after every bookmark"),
    bookmark_fsfreeze: list[str] = typer.Option([], help="mount point frozen around every bookmark; repeat"),
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
                                 volumes=",".join(volume), spool_dir=spool, nbd_socket=nbd_socket,
                                 nbd_port=nbd_port, nbd_tls_dir=nbd_tls_dir, control_socket=control_socket,
                                 control_port=control_port, bookmark_hook=bookmark_hook,
                                 bookmark_fsfreeze=",".join(bookmark_fsfreeze), bandwidth=bandwidth, baseline=baseline,
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


ControlOpt = typer.Option(None, "--control", help="agent control socket path, or http://127.0.0.1:PORT for "
                                                 "its TCP listener (default: the socket in the spool directory)")
TokenFileOpt = typer.Option(None, "--control-token-file", help="token file of the TCP control API")
SpoolOpt = typer.Option(None, "--spool", help="the agent's spool directory, where its socket is "
                                              "(default DIALBACK_AGENT_SPOOL_DIR)")


def status(control: Optional[str] = ControlOpt, token_file: Optional[Path] = TokenFileOpt,
           group: Optional[str] = typer.Option(None, help="protection group (finds its socket)"),
           spool: Optional[Path] = SpoolOpt) -> None:
    """Show protection state: sequences, RPO, spool, sync progress, alarms."""
    resp = _call(_control(control, group, token_file, spool), "GET", "/status")
    if resp.status_code != 200:
        console.print(f"[red]status refused ({resp.status_code}):[/red] {resp.text}")
        raise typer.Exit(1)
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
    quiesce: bool = typer.Option(True, help="run the agent's configured hook and freezes around it "
                                            "(--no-quiesce: a crash-consistent bookmark)"),
    control: Optional[str] = ControlOpt, token_file: Optional[Path] = TokenFileOpt,
    spool: Optional[Path] = SpoolOpt,
    fsfreeze: Optional[str] = typer.Option(None, hidden=True),
    hook: Optional[str] = typer.Option(None, hidden=True),
) -> None:
    """Take a named, optionally application-consistent, recovery point."""
    if fsfreeze or hook:
        console.print("[red]--fsfreeze and --hook are settings of the agent, not of a bookmark:[/red] start it "
                      "with `dialback protect ... --bookmark-fsfreeze MOUNT --bookmark-hook PATH`; every "
                      "bookmark then runs them")
        raise typer.Exit(2)
    resp = _call(_control(control, group, token_file, spool), "POST", "/v1/bookmarks",
                 json={"group": group, "name": name, "quiesce": quiesce})
    if resp.status_code != 200:
        try:
            detail = resp.json().get("detail", resp.text)
        except ValueError:
            detail = resp.text
        console.print(f"[red]bookmark refused ({resp.status_code}):[/red] {detail}")
        raise typer.Exit(1)
    out = resp.json()
    console.print(f"bookmark [bold]{out['name']}[/bold] in group {out['group']} at sequence {out['sequence']}")


def nbd_certs(
    directory: Path = typer.Argument(..., help="creates DIRECTORY/server and DIRECTORY/client"),
    hostname: list[str] = typer.Option(["127.0.0.1", "localhost"], help="name clients connect to; repeat"),
    days: int = typer.Option(825, help="validity"),
) -> None:
    """Create a CA, a server and a client certificate for NBD over TCP with mutual TLS."""
    from shared.nbd_tls import NbdTlsError, make_certs

    try:
        server, client = make_certs(directory, hostname, days)
    except NbdTlsError as err:
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(1) from err
    console.print(f"server side: dialback protect ... --nbd-port 10809 --nbd-tls-dir {server}\n"
                  f"client side: nbdinfo 'nbds://127.0.0.1:10809/disk0?tls-certificates={client}'")


def register(app: typer.Typer) -> None:
    app.command("protect")(protect)
    app.command("bookmark")(bookmark)
    agent_app = typer.Typer(help="The local data tap.", no_args_is_help=True)
    agent_app.command("status")(status)
    agent_app.command("nbd-certs")(nbd_certs)
    from agent.profile.cli import register_profile  # `dialback agent profile`: the tap in profile-only mode

    register_profile(agent_app)
    app.add_typer(agent_app, name="agent")
