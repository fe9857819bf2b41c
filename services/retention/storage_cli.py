"""``dialback storage usage TENANT``: logical vs stored bytes, compression and dedup per group and volume."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

err = Console(stderr=True)


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f}"


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def register(app: typer.Typer) -> None:
    st = typer.Typer(help="Storage accounting of a tenant's bucket (docs/storage.md).", no_args_is_help=True)
    app.add_typer(st, name="storage")

    @st.command("usage")
    def usage(tenant: Annotated[str, typer.Argument(help="tenant id (its bucket is measured)")],
              as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False) -> None:
        """Logical bytes protected, bytes stored, compression and dedup ratios per group and volume."""
        from services.retention.accounting import measure_tenant
        from services.retention.config import RetentionSettings
        from shared.errors import DialbackError
        from shared.objectstore.factory import open_tenant_bucket

        try:
            s = RetentionSettings()
            store, bucket = open_tenant_bucket(s, tenant)
            u = measure_tenant(store, bucket)
        except (DialbackError, ValueError) as e:
            err.print(f"[red]error:[/red] {e}")
            raise typer.Exit(2) from e
        if as_json:
            typer.echo(json.dumps(u.to_dict(), indent=2))
            return
        t = Table(title=f"storage usage of {bucket} (MB)")
        for col in ("group", "volume", "logical", "stored", "journal", "chunks", "docs", "compression", "dedup"):
            t.add_column(col, justify="left" if col in ("group", "volume") else "right")
        for g, gu in sorted(u.groups.items()):
            t.add_row(g, "(all)", _mb(gu.logical_bytes), _mb(gu.stored_bytes), _mb(gu.segment_bytes),
                      _mb(gu.chunk_bytes), _mb(gu.document_bytes), _ratio(gu.compression_ratio),
                      _ratio(gu.dedup_ratio))
            for v, vu in sorted(gu.volumes.items()):
                t.add_row("", v, _mb(vu.logical_bytes), _mb(vu.stored_bytes), "", "", "", "", "")
        t.add_row("total", "", _mb(u.logical_bytes), _mb(u.stored_bytes), "", "", "", "", "")
        Console().print(t)
        Console().print(f"bucket holds {_mb(u.bucket_bytes)} MB; {_mb(u.unattributed_bytes)} MB unattributed "
                        "(chunks awaiting GC, leases)")
        if u.damaged:
            err.print(f"[yellow]warning:[/yellow] {len(u.damaged)} objects did not decode and were counted "
                      f"without analysis (first: {u.damaged[0]}); run 'dialback verify {tenant}'")
