"""`dialback burst ...` (talks to the burst service over HTTP) and `dialback serve-burst`."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import httpx
import typer
from rich.console import Console
from rich.table import Table

console = Console()
burst_app = typer.Typer(help="Run servers in the cloud from recovery points: DR tests, failover, burst, plans.",
                        no_args_is_help=True)
RESTING = {"running", "cleaned", "failed"}


def _url() -> str:
    return os.environ.get("DIALBACK_BURST_URL", "http://127.0.0.1:8106")


def _headers(token: str | None) -> dict[str, str]:
    if not token:
        console.print("[red]error:[/] no token: give --token T or set DIALBACK_TOKEN (the tenant's operator token from "
                      "`dialback tenant create`, or the provider's DIALBACK_BURST_ADMIN_TOKEN)")
        raise typer.Exit(2)
    return {"Authorization": f"Bearer {token}"}


def _call(method: str, path: str, token: str | None, **kw) -> dict | list:
    headers = _headers(token)
    try:
        r = httpx.request(method, _url() + path, timeout=60, headers=headers, **kw)
    except httpx.HTTPError as err:
        console.print(f"[red]error:[/] cannot reach the burst service at {_url()} ({err}); "
                      "start it with `dialback serve-burst` or set DIALBACK_BURST_URL")
        raise typer.Exit(2) from err
    if r.status_code >= 400:
        detail = r.json().get("detail") if r.headers.get("content-type", "").startswith("application/json") else r.text
        msg = detail.get("message") if isinstance(detail, dict) else json.dumps(detail)
        console.print(f"[red]error ({r.status_code}):[/] {msg}")
        raise typer.Exit(1)
    return r.json()


def _follow(tenant: str, op_id: str, token: str | None, until: set[str] = RESTING) -> dict:
    with console.status(f"{op_id}: starting") as status:
        while True:
            st = _call("GET", f"/v1/tenants/{tenant}/operations/{op_id}", token)
            active = sum(1 for s in st["servers"].values() if s["status"] == "ACTIVE")
            status.update(f"{op_id}: {st['status']} — {active}/{len(st['servers'])} servers ACTIVE")
            if st["status"] in until:
                break
            time.sleep(1)
    _show(st)
    if st["status"] == "failed":
        raise typer.Exit(1)
    return st


def _show(st: dict) -> None:
    console.print(f"[bold]{st['id']}[/] ({st['kind']}, tenant {st['tenant']}): [cyan]{st['status']}[/]"
                  + (f" — [red]{st['error']}[/]" if st.get("error") else ""))
    if st["servers"]:
        t = Table("server", "status", "flavor", "addresses", "id")
        for name, s in st["servers"].items():
            addrs = ", ".join(a for lst in (s.get("addresses") or {}).values() for a in lst)
            t.add_row(name, s["status"], s["flavor"], addrs, s["id"])
        console.print(t)
    if st.get("timings"):
        console.print("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in st["timings"].items()))


def _submit(body: dict, wait: bool, token: str | None) -> None:
    body = {k: v for k, v in body.items() if v is not None}
    st = _call("POST", "/v1/operations", token, json=body)
    console.print(f"operation [bold]{st['id']}[/] accepted ({st['status']})")
    if wait:
        _follow(body["tenant"], body["id"], token)


TENANT = typer.Option(..., "--tenant", "-t", envvar="DIALBACK_TENANT")
TOKEN = typer.Option(None, "--token", envvar="DIALBACK_TOKEN", show_default=False,
                     help="the tenant's bearer token (or the provider's admin token)")
OP_ID = typer.Option(None, "--id", help="operation id (default: random); reuse it to retry safely")
WAIT = typer.Option(True, "--wait/--no-wait", help="follow progress until running or finished")


def _id(op_id: str | None, kind: str) -> str:
    return op_id or f"{kind}-{uuid.uuid4().hex[:10]}"


@burst_app.command()
def test(group: str, volume: str, tenant: str = TENANT, token: str = TOKEN, point: str = "latest",
         flavor: str = None,
         minutes: int = typer.Option(60, help="time limit; everything is removed afterwards"),
         op_id: str = OP_ID, wait: bool = WAIT) -> None:
    """DR test: boot the volume at a point on an isolated network, remove it all after the time limit."""
    _submit({"id": _id(op_id, "drtest"), "tenant": tenant, "kind": "drtest", "group": group, "volume": volume,
             "point": point, "flavor": flavor, "time_limit_seconds": minutes * 60}, wait, token)


@burst_app.command()
def failover(group: str, volume: str, tenant: str = TENANT, token: str = TOKEN, point: str = "latest",
             flavor: str = None,
             hook: str = typer.Option(None, help="command run once the server is ACTIVE; failure rolls back"),
             op_id: str = OP_ID, wait: bool = WAIT) -> None:
    """Failover: boot the volume at the latest (or a chosen) point on the production network."""
    _submit({"id": _id(op_id, "failover"), "tenant": tenant, "kind": "failover", "group": group,
             "volume": volume, "point": point, "flavor": flavor, "hook": hook.split() if hook else None}, wait, token)


@burst_app.command()
def scale(group: str, volume: str, count: int, tenant: str = TENANT, token: str = TOKEN, point: str = "latest",
          flavor: str = None,
          minutes: int = typer.Option(None, help="optional time limit"), op_id: str = OP_ID,
          wait: bool = WAIT) -> None:
    """Burst capacity: COUNT servers from the volume; with --id of a running burst, rescale it."""
    if op_id:
        try:
            st = httpx.get(f"{_url()}/v1/tenants/{tenant}/operations/{op_id}", timeout=30,
                           headers=_headers(token))
        except httpx.HTTPError:
            st = None
        if st is not None and st.status_code == 200:
            _call("POST", f"/v1/tenants/{tenant}/operations/{op_id}/scale", token, json={"count": count})
            if wait:
                _follow(tenant, op_id, token, {"running", "cleaned", "failed"})
            return
    _submit({"id": _id(op_id, "burst"), "tenant": tenant, "kind": "burst", "group": group, "volume": volume,
             "point": point, "flavor": flavor, "count": count,
             "time_limit_seconds": minutes * 60 if minutes else None}, wait, token)


@burst_app.command()
def plan(file: Path, tenant: str = TENANT, token: str = TOKEN, op_id: str = OP_ID, wait: bool = WAIT) -> None:
    """Run a recovery plan from a JSON file: {"stages": [{"name", "servers": [...], "wait_seconds", "hook"}]}."""
    doc = json.loads(file.read_text())
    _submit({"id": _id(op_id, "plan"), "tenant": tenant, "kind": "plan", "stages": doc["stages"]}, wait, token)


@burst_app.command()
def status(op_id: str = typer.Argument(None), tenant: str = TENANT, token: str = TOKEN) -> None:
    """One operation in detail, or every operation of the tenant."""
    if op_id:
        _show(_call("GET", f"/v1/tenants/{tenant}/operations/{op_id}", token))
        return
    t = Table("id", "kind", "status", "servers", "error")
    for st in _call("GET", f"/v1/tenants/{tenant}/operations", token):
        t.add_row(st["id"], st["kind"], st["status"], str(len(st["servers"])), st.get("error") or "")
    console.print(t)


@burst_app.command()
def cleanup(op_id: str, tenant: str = TENANT, token: str = TOKEN, wait: bool = WAIT) -> None:
    """Remove everything the operation made (servers, ports, images, networks)."""
    _call("POST", f"/v1/tenants/{tenant}/operations/{op_id}/cleanup", token,
          json={"reason": "requested from the CLI"})
    if wait:
        _follow(tenant, op_id, token, {"cleaned", "failed"})


@burst_app.command()
def failback(op_id: str, reverse_group: str = typer.Option(..., help="group of the tap on the cloud disk"),
             target: Path = typer.Option(..., help="the original site's disk (file or device)"),
             agent_url: str = typer.Option(..., help="control URL of the reverse tap (its host:port must be in the "
                                                     "service's DIALBACK_BURST_FAILBACK_ALLOWED_HOSTS)"),
             reverse_volume: str = typer.Option(None, help="volume name in the reverse group (default: VOLUME-back)"),
             expect_sha256: str = typer.Option(None, help="cloud disk digest at the cut-over, checked at the end"),
             tenant: str = TENANT, token: str = TOKEN, wait: bool = WAIT) -> None:
    """Bring failover OP home: cut over, ship only the cloud's changes onto TARGET, verify, clean up."""
    _call("POST", f"/v1/tenants/{tenant}/operations/{op_id}/failback", token,
          json={"reverse_group": reverse_group, "target": str(target.resolve()), "agent_url": agent_url,
                "reverse_volume": reverse_volume, "expect_sha256": expect_sha256})
    if wait:
        _follow(tenant, op_id, token, {"running", "cleaned", "failed"})


def serve_burst() -> None:
    """Serve the burst API (DIALBACK_BURST_HOST/PORT; OpenStack from DIALBACK_OS_*)."""
    from services.burst.__main__ import main
    main()


def register(app: typer.Typer) -> None:
    app.add_typer(burst_app, name="burst")
    app.command("serve-burst")(serve_burst)
