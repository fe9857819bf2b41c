"""``dialback points``, ``dialback recover`` and ``dialback serve-recovery``.

Both client commands talk to the recovery API (``--recovery URL --token T``)
or, with ``--direct``, read the tenant's bucket in MinIO themselves using the
DIALBACK_S3_* settings (operator use: ``--tenant`` names the bucket).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from services.recovery.errors import BadRequest, RecoveryError
from services.recovery.upload import check_target_key
from services.recovery.planner import At

err = Console(stderr=True)

RecoveryUrl = Annotated[Optional[str], typer.Option("--recovery", envvar="DIALBACK_RECOVERY_URL",
                                                    help="recovery API base URL, e.g. http://127.0.0.1:8102")]
Token = Annotated[Optional[str], typer.Option("--token", envvar="DIALBACK_TOKEN", help="tenant bearer token")]
Direct = Annotated[bool, typer.Option("--direct", help="read MinIO directly with DIALBACK_S3_* settings")]
Tenant = Annotated[Optional[str], typer.Option("--tenant", envvar="DIALBACK_TENANT", help="tenant (with --direct)")]


def parse_time(value: str) -> int:
    """ISO 8601 (naive = UTC) or integer nanoseconds since the epoch."""
    if value.isdigit():
        return int(value)
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise BadRequest(f"--at-time {value!r} is neither ISO 8601 (2026-11-25T04:05:06Z) nor nanoseconds") from e
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def _fmt_ns(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, timezone.utc).isoformat(timespec="milliseconds")


def _fail(msg: str) -> None:
    err.print(f"[red]error:[/red] {msg}")
    raise typer.Exit(1)


def _direct_service(tenant: str | None):
    from services.recovery.config import RecoverySettings
    from services.recovery.service import Recovery
    from shared.objectstore.factory import store_from_settings

    if not tenant:
        _fail("--direct needs --tenant (or DIALBACK_TENANT)")
    s = RecoverySettings()
    return Recovery(store_from_settings(s), s.bucket_prefix, s.work_path(), s.recovery_prefetch)


def _client(url: str | None, token: str | None):
    import httpx

    if not url or not token:
        _fail("give --recovery URL and --token T (or DIALBACK_RECOVERY_URL / DIALBACK_TOKEN), or use --direct")
    return httpx.Client(base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=None)


def _check(resp) -> dict:
    if resp.status_code >= 400:
        try:
            detail = resp.json().get("detail")
        except ValueError:
            detail = resp.text
        _fail(f"recovery API answered {resp.status_code}: {detail}")
    return resp.json()


def _print_points(p: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(p, indent=2))
        return
    t = Table(title=f"group {p['group']}")
    t.add_column("what")
    t.add_column("sequence", justify="right")
    t.add_column("time (UTC)")
    for label in ("earliest", "latest"):
        if p[label]:
            t.add_row(label, str(p[label]["sequence"]), _fmt_ns(p[label]["timestamp_ns"]))
    for b in p["bookmarks"]:
        t.add_row(f"bookmark {b['name']}", str(b["sequence"]), _fmt_ns(b["timestamp_ns"]))
    Console().print(t)
    _print_windows(p.get("windows", []))
    if not p["earliest"]:
        err.print("no recoverable point yet: the initial sync has not completed")
    err.print("volumes: " + ", ".join(f"{v['volume']} ({v['size']} bytes)" for v in p["volumes"]))
    if p.get("broken"):
        err.print(f"BROKEN: the journal lacks sequence {p['broken']['expected']} (since {p['broken']['since']}); "
                  "no point after it until the agent's resend or resync is journaled")


def _print_windows(windows: list[dict]) -> None:
    """Inconsistency windows: points strictly between the two ends are refused."""
    if not windows:
        return
    t = Table(title="not consistent (refused): strictly between")
    t.add_column("window")
    t.add_column("consistent before", justify="right")
    t.add_column("consistent after", justify="right")

    def edge(e: dict | None, none: str) -> str:
        return none if e is None else f"{e['sequence']} ({_fmt_ns(e['timestamp_ns'])})"

    for w in windows:
        t.add_row(w["kind"], edge(w["consistent_before"], "journal start"),
                  edge(w["consistent_after"], "open: resync under way"))
    Console().print(t)


def register(app: typer.Typer) -> None:
    from services.recovery.export_cli import register as register_exports
    from services.recovery.verify_cli import register as register_verify

    register_verify(app)
    register_exports(app)

    @app.command("points")
    def points(group: str, recovery: RecoveryUrl = None, token: Token = None, direct: Direct = False,
               tenant: Tenant = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
        """List GROUP's recovery points: earliest, latest (consistent), bookmarks and inconsistency windows."""
        try:
            if direct:
                p = _direct_service(tenant).points(tenant, group)
            else:
                with _client(recovery, token) as c:
                    p = _check(c.get(f"/v1/groups/{group}/points"))
        except RecoveryError as e:
            _fail(str(e))
        _print_points(p, as_json)

    @app.command("recover")
    def recover(
        group: str,
        dest: Annotated[Optional[str], typer.Argument(help="'-' writes the image to stdout")] = None,
        volume: Annotated[str, typer.Option("--volume", help="volume id, or 'all' (with --out DIR or --object)")] = ...,
        at_time: Annotated[Optional[str], typer.Option("--at-time", help="ISO 8601 or ns since epoch")] = None,
        at_seq: Annotated[Optional[int], typer.Option("--at-seq")] = None,
        bookmark: Annotated[Optional[str], typer.Option("--bookmark")] = None,
        out: Annotated[Optional[Path], typer.Option("--out", help="local image file (a directory for 'all')")] = None,
        object_key: Annotated[Optional[str], typer.Option("--object", help="object key in the tenant's bucket")] = None,
        recovery: RecoveryUrl = None, token: Token = None, direct: Direct = False, tenant: Tenant = None,
    ) -> None:
        """Rebuild VOLUME of GROUP at a point, to a file, an object or stdout."""
        try:
            at = At.of(at_seq, parse_time(at_time) if at_time is not None else None, bookmark)
        except RecoveryError as e:
            _fail(f"{e} (use one of --at-time, --at-seq, --bookmark)")
        to_stdout = dest == "-" or (out is not None and str(out) == "-")
        targets = [x for x in (out is not None and not to_stdout, object_key is not None, to_stdout) if x]
        if len(targets) != 1:
            _fail("give exactly one destination: --out FILE, --object KEY or '-' for stdout")
        if to_stdout and volume == "all":
            _fail("'-' takes one volume; use --out DIR or --object PREFIX/ for the whole group")
        try:
            if object_key is not None:
                check_target_key(object_key)  # before any I/O, as the API does
            if direct:
                _recover_direct(group, volume, at, out if not to_stdout else None, object_key, to_stdout, tenant)
            else:
                _recover_api(group, volume, at, out if not to_stdout else None, object_key, to_stdout,
                             recovery, token)
        except RecoveryError as e:
            _fail(str(e))

    @app.command("serve-recovery")
    def serve_recovery(port: Annotated[Optional[int], typer.Option(help="default $DIALBACK_RECOVERY_PORT or 8102")]
                       = None) -> None:
        """Run the recovery API on 127.0.0.1 (settings from DIALBACK_* variables)."""
        import os

        if port is not None:
            os.environ["DIALBACK_RECOVERY_PORT"] = str(port)
        from services.recovery.__main__ import main

        main()


def _outputs(volumes: list[str], out: Path) -> dict[str, Path]:
    if len(volumes) == 1 and not out.is_dir():
        return {volumes[0]: out}
    out.mkdir(parents=True, exist_ok=True)
    return {v: out / f"{v}.img" for v in volumes}


def _recover_direct(group, volume, at, out, object_key, to_stdout, tenant) -> None:
    svc = _direct_service(tenant)
    plan = svc.plan(tenant, group, volume, at)
    err.print(f"recovering {', '.join(plan.volumes)} of {group} at sequence {plan.point.sequence} "
              f"({_fmt_ns(plan.point.timestamp_ns)})")
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(), console=err) as bar:
        task = bar.add_task("journal", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        if object_key is not None:
            res = svc.to_objects(plan, object_key, progress=progress)
            for v in res.volumes:
                err.print(f"{v['volume']}: s3://{v['bucket']}/{v['key']} ({v['size']} bytes)")
        elif to_stdout:
            paths, _ = svc.to_temp(plan, progress)
            try:
                _copy_to_stdout(paths[plan.volumes[0]])
            finally:
                for p in paths.values():
                    p.unlink(missing_ok=True)
        else:
            res = svc.to_files(plan, _outputs(plan.volumes, out), progress)
            for v in res.volumes:
                err.print(f"{v['volume']}: {v['path']} ({v['size']} bytes)")


def _copy_to_stdout(path: Path) -> None:
    with open(path, "rb") as fh:
        while block := fh.read(8 << 20):
            sys.stdout.buffer.write(block)
    sys.stdout.buffer.flush()


def _recover_api(group, volume, at, out, object_key, to_stdout, url, token) -> None:
    at_q = {k: v for k, v in (("sequence", at.sequence), ("timestamp_ns", at.timestamp_ns),
                              ("bookmark", at.bookmark)) if v is not None}
    with _client(url, token) as c:
        if object_key is not None:
            with err.status("synthesizing and uploading on the recovery service..."):
                res = _check(c.post(f"/v1/groups/{group}/recoveries",
                                    json={"volume": volume, "at": at_q, "target": {"key": object_key}}))
            for v in res["volumes"]:
                err.print(f"{v['volume']} at sequence {res['sequence']}: s3://{v['bucket']}/{v['key']}")
            return
        if volume == "all":
            volumes = [v["volume"] for v in _check(c.get(f"/v1/groups/{group}/points"))["volumes"]]
        else:
            volumes = [volume]
        targets = {v: None for v in volumes} if to_stdout else _outputs(volumes, out)
        for v, path in targets.items():
            _download(c, group, v, at_q, path)


def _download(c, group: str, volume: str, at_q: dict, path: Path | None) -> None:
    with err.status(f"synthesizing {volume} on the recovery service..."):
        resp = c.send(c.build_request("GET", f"/v1/groups/{group}/volumes/{volume}/image", params=at_q),
                      stream=True)
    try:
        if resp.status_code >= 400:
            resp.read()
            _check(resp)
        total = int(resp.headers.get("content-length", 0)) or None
        err.print(f"{volume}: sequence {resp.headers.get('x-dialback-sequence')}")
        tmp = path.with_name(f".{path.name}.partial") if path else None
        sink = open(tmp, "wb") if tmp else sys.stdout.buffer
        try:
            with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                          TransferSpeedColumn(), TimeRemainingColumn(), console=err) as bar:
                task = bar.add_task(volume, total=total)
                for chunk in resp.iter_bytes(1 << 20):
                    sink.write(chunk)
                    bar.advance(task, len(chunk))
        finally:
            if tmp:
                sink.close()
        if tmp:
            tmp.replace(path)
            err.print(f"{volume}: {path}")
    finally:
        resp.close()
