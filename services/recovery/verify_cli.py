"""``dialback verify TENANT``: read every retained object of a tenant and prove it restorable (docs/storage.md).

Operator command on MinIO directly (DIALBACK_S3_* and, for encrypted
buckets, DIALBACK_MASTER_KEY_FILE). Exit 0 = every retained point is
restorable; 1 = problems found (each printed); 2 = bad arguments or the
store could not be reached.
"""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    @app.command("verify")
    def verify(
        tenant: Annotated[str, typer.Argument(help="tenant id (its bucket is verified)")],
        group: Annotated[Optional[str], typer.Option("--group", help="only this protection group")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON on stdout")] = False,
        now: Annotated[Optional[str], typer.Option("--now", help="policy clock: ISO 8601 or ns (default: now)")]
        = None,
        workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="parallel object reads")] = 8,
    ) -> None:
        """Read and check every object TENANT's retained recovery points need (restic check --read-data)."""
        from services.recovery.cli import parse_time
        from services.recovery.config import RecoverySettings
        from services.recovery.errors import RecoveryError
        from services.recovery.verify import planned_bytes, verify_tenant
        from services.retention.gc import list_groups
        from shared.objectstore import ObjectStoreError
        from shared.objectstore.factory import open_tenant_bucket

        try:
            now_ns = parse_time(now) if now is not None else None
            s = RecoverySettings()
            store, bucket = open_tenant_bucket(s, tenant)
            groups = [group] if group else list_groups(store, bucket)
            total = planned_bytes(store, bucket, groups)
        except (RecoveryError, ValueError, ObjectStoreError) as e:
            err.print(f"[red]error:[/red] {e}")
            raise typer.Exit(2) from e
        with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                      TransferSpeedColumn(), TimeRemainingColumn(), console=err, transient=as_json) as bar:
            task = bar.add_task(f"verify {bucket}", total=total or None)
            try:
                report = verify_tenant(store, bucket, group, progress=lambda n: bar.advance(task, n),
                                       workers=workers, now_ns=now_ns)
            except ObjectStoreError as e:
                err.print(f"[red]error:[/red] verify stopped: {e}; retry when the store answers")
                raise typer.Exit(2) from e
        if as_json:
            typer.echo(json.dumps(report.to_dict(), indent=2))
        else:
            _print(report)
        raise typer.Exit(0 if report.ok else 1)


def _print(report) -> None:
    out = Console()
    out.print(f"verified {report.bucket}: groups {', '.join(report.groups) or '(none)'}; {report.objects} objects, "
              f"{report.bytes / 1e6:.1f} MB in {report.seconds:.1f} s ({report.mb_per_s:.1f} MB/s)")
    if report.ok:
        out.print("[green]no problems: every retained recovery point is restorable[/green]")
        return
    t = Table(title=f"{len(report.problems)} problems", show_lines=False)
    for col in ("object", "problem", "detail"):
        t.add_column(col, overflow="fold")
    for p in report.problems:
        t.add_row(p.key, p.what, p.detail)
    out.print(t)
    out.print("[red]some recovery points are not restorable[/red]: restore the named objects from a replica, "
              "or re-protect the affected groups")
