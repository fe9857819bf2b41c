"""``dialback export start|list|stop``: instant access to a recovery point over NBD, via the recovery API."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from services.recovery.cli import RecoveryUrl, Token, _check, _client, _fail, _fmt_ns, err, parse_time
from services.recovery.errors import RecoveryError
from services.recovery.planner import At

export_app = typer.Typer(help="Serve a recovery point over NBD without building an image (instant access).",
                         no_args_is_help=True)
AsJson = Annotated[bool, typer.Option("--json", help="print the API's answer as JSON")]


def _row(t: Table, e: dict) -> None:
    uri = e.get("uri") or f"{'nbds' if e.get('tls') else 'nbd'}://{e['host']}:{e['port']}/(secret, shown once at start)"
    t.add_row(e["id"], e["volume"], str(e["sequence"]), _fmt_ns(e["timestamp_ns"]), e["mode"], uri)


def _table(title: str) -> Table:
    t = Table(title=title)
    for c in ("id", "volume", "sequence", "point (UTC)", "mode", "NBD URI"):
        t.add_column(c, justify="right" if c == "sequence" else "left", overflow="fold")
    return t


@export_app.command("start")
def start(
    group: str,
    volume: Annotated[str, typer.Option("--volume", help="the volume to export")] = ...,
    at_time: Annotated[Optional[str], typer.Option("--at-time", help="ISO 8601 or ns since epoch")] = None,
    at_seq: Annotated[Optional[int], typer.Option("--at-seq")] = None,
    bookmark: Annotated[Optional[str], typer.Option("--bookmark")] = None,
    latest: Annotated[bool, typer.Option("--latest", help="the latest recoverable point")] = False,
    overlay: Annotated[bool, typer.Option("--overlay", help="writable throwaway overlay (DR tests)")] = False,
    recovery: RecoveryUrl = None, token: Token = None, as_json: AsJson = False,
) -> None:
    """Export VOLUME of GROUP at a point over NBD; prints its nbd:// URI."""
    body: dict = {"volume": volume, "mode": "overlay" if overlay else "read-only"}
    given = [x for x in (at_time, at_seq, bookmark) if x is not None]
    if len(given) + int(latest) != 1:
        _fail("give exactly one of --at-time, --at-seq, --bookmark or --latest")
    if latest:
        body["latest"] = True
    else:
        try:
            at = At.of(at_seq, parse_time(at_time) if at_time is not None else None, bookmark)
        except RecoveryError as e:
            _fail(str(e))
        body["at"] = {k: v for k, v in (("sequence", at.sequence), ("timestamp_ns", at.timestamp_ns),
                                        ("bookmark", at.bookmark)) if v is not None}
    with _client(recovery, token) as c:
        with err.status(f"mapping {volume} of {group}..."):
            e = _check(c.post(f"/v1/groups/{group}/exports", json=body))
    if as_json:
        print(json.dumps(e, indent=2))
        return
    t = _table(f"export of group {group}")
    _row(t, e)
    Console().print(t)
    tls = "?tls-certificates=CLIENT_CERT_DIR" if e.get("tls") else ""
    err.print(f"connect with: nbdinfo '{e['uri']}{tls}'   stop with: dialback export stop {group} {e['id']}\n"
              "the URI holds the export's secret name: it is shown only now, keep it private")


@export_app.command("list")
def list_(group: str, recovery: RecoveryUrl = None, token: Token = None, as_json: AsJson = False) -> None:
    """List GROUP's open exports."""
    with _client(recovery, token) as c:
        res = _check(c.get(f"/v1/groups/{group}/exports"))
    if as_json:
        print(json.dumps(res, indent=2))
        return
    t = _table(f"open exports of group {group}")
    for e in res["exports"]:
        _row(t, e)
    Console().print(t)
    if not res["exports"]:
        err.print("no open exports")


@export_app.command("stop")
def stop(group: str, export_id: str, recovery: RecoveryUrl = None, token: Token = None,
         as_json: AsJson = False) -> None:
    """Close an export: NBD server stopped, overlay deleted, lease released."""
    with _client(recovery, token) as c:
        res = _check(c.delete(f"/v1/groups/{group}/exports/{export_id}"))
    if as_json:
        print(json.dumps(res, indent=2))
        return
    err.print(f"export {export_id} of {group} stopped after {res.get('seconds', 0):.0f} s")


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
