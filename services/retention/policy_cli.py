"""``dialback retention policy show|set`` and ``dialback retention run``: operator commands on MinIO directly.

The policy object is read by every rollup/GC run, so ``set`` applies at the
next run of the retention job without a restart.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Annotated, Optional

import typer
from rich.console import Console

from services.retention.policy import Policy, PolicyError, read_policy, write_policy

err = Console(stderr=True)
Tenant = Annotated[str, typer.Option("--tenant", envvar="DIALBACK_TENANT", help="tenant id (its bucket)")]
Group = Annotated[str, typer.Option("--group", help="protection group (a volume is a group of one)")]


def _store_and_bucket(tenant: str):
    from services.retention.config import RetentionSettings
    from shared.objectstore.factory import store_from_settings
    from shared.tenancy import tenant_bucket

    s = RetentionSettings()
    return store_from_settings(s), tenant_bucket(tenant, s.bucket_prefix), s


def register(app: typer.Typer) -> None:
    ret = typer.Typer(help="Retention policy, rollup into bases and garbage collection (docs/storage.md).",
                      no_args_is_help=True)
    pol = typer.Typer(help="Show or change a group's retention policy.", no_args_is_help=True)
    ret.add_typer(pol, name="policy")
    app.add_typer(ret, name="retention")

    @pol.command("show")
    def show(tenant: Tenant, group: Group) -> None:
        """Print the group's policy as JSON (the default when none was set)."""
        store, bucket, _ = _store_and_bucket(tenant)
        typer.echo(read_policy(store, bucket, group).to_json().decode())

    @pol.command("set")
    def set_(tenant: Tenant, group: Group,
             anypoint_hours: Annotated[Optional[float], typer.Option(help="keep every write this many hours")] = None,
             hourly_days: Annotated[Optional[float], typer.Option(help="then hourly points this many days")] = None,
             daily_weeks: Annotated[Optional[float], typer.Option(help="then daily points this many weeks")] = None,
             ) -> None:
        """Change some or all of the policy; applies at the retention job's next run."""
        store, bucket, _ = _store_and_bucket(tenant)
        old = read_policy(store, bucket, group)
        try:
            new = Policy(anypoint_hours if anypoint_hours is not None else old.anypoint_hours,
                         hourly_days if hourly_days is not None else old.hourly_days,
                         daily_weeks if daily_weeks is not None else old.daily_weeks)
        except PolicyError as e:
            err.print(f"[red]error:[/red] {e}")
            raise typer.Exit(2) from e
        write_policy(store, bucket, group, new)
        typer.echo(new.to_json().decode())

    @ret.command("run")
    def run(tenant: Tenant,
            now: Annotated[Optional[str], typer.Option(help="policy clock: ISO 8601 or ns (default: now)")] = None,
            no_gc: Annotated[bool, typer.Option("--no-gc", help="rollup only")] = False) -> None:
        """Run rollup (+ GC) for every group of a tenant once and print what it did."""
        from services.retention.job import run_tenant

        store, bucket, s = _store_and_bucket(tenant)
        now_ns = None
        if now is not None and now.isdigit():
            now_ns = int(now)
        elif now is not None:
            try:
                dt = datetime.fromisoformat(now.replace("Z", "+00:00"))
            except ValueError as e:
                err.print(f"[red]error:[/red] --now {now!r} is neither ISO 8601 (2026-11-25T04:00:00Z) nor ns")
                raise typer.Exit(2) from e
            now_ns = int((dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp() * 1e9)
        res = run_tenant(store, bucket, now_ns, s.retention_chunk_size, gc=not no_gc, chunk_grace_s=s.chunk_grace_s())
        typer.echo(json.dumps({"rollups": {g: vars(r) for g, r in res.rollups.items()},
                               "gc": vars(res.gc) if res.gc else None}, indent=2))
