"""`dialback serve-metering`, `dialback usage ...` and `dialback license on|off ...`."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Optional

import typer

from shared.usage import Feature


def _url(url: str | None) -> str:
    if url:
        return url.rstrip("/")
    from services.metering.config import MeteringSettings

    s = MeteringSettings()
    return f"http://{s.metering_host}:{s.metering_port}"


def _token(token: str | None, provider: bool = False) -> str:
    env = ("DIALBACK_METERING_ADMIN_TOKEN", "DIALBACK_TOKEN") if provider else \
        ("DIALBACK_TOKEN", "DIALBACK_METERING_ADMIN_TOKEN")
    tok = token or next((os.environ[e] for e in env if os.environ.get(e)), None)
    if not tok:
        what = "a provider credential (DIALBACK_METERING_ADMIN_TOKEN)" if provider else \
            "a tenant operator token, or the provider's admin token"
        raise typer.BadParameter(f"give --token ({what}), or set {' or '.join(env)}", param_hint="--token")
    return tok


def _call(method: str, url: str, token: str, **kw):
    import httpx

    try:
        r = httpx.request(method, url, headers={"Authorization": f"Bearer {token}"}, timeout=30, **kw)
    except httpx.HTTPError as err:
        typer.echo(f"cannot reach metering at {url}: {err}; is `dialback serve-metering` running?", err=True)
        raise typer.Exit(2) from err
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        typer.echo(f"metering refused ({r.status_code}): {detail}", err=True)
        raise typer.Exit(1)
    return r


def _parse_time(value: str | None, default: datetime) -> datetime:
    if value is None:
        return default
    t = datetime.fromisoformat(value)
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def register(app: typer.Typer) -> None:
    @app.command("serve-metering")
    def serve_metering() -> None:
        """Run the metering service: usage aggregation, billing feed, licences, purge (DIALBACK_* env)."""
        from services.metering.__main__ import main

        main()

    @app.command("usage")
    def usage(
        tenant: str = typer.Argument(..., help="tenant id, or 'all' for the provider's view (admin token)"),
        start: Optional[str] = typer.Option(None, "--from", help="UTC start, e.g. 2026-11-25T00:00 (default: today)"),
        end: Optional[str] = typer.Option(None, "--to", help="UTC end, exclusive (default: from + 1 day)"),
        granularity: str = typer.Option("hour", "--granularity", help="hour or day"),
        csv: bool = typer.Option(False, "--csv", help="print CSV instead of a table"),
        by_subject: bool = typer.Option(False, "--by-subject", help="one row per volume/server"),
        url: Optional[str] = typer.Option(None, help="metering API (default from DIALBACK_METERING_*)"),
        token: Optional[str] = typer.Option(None, help="bearer token (default $DIALBACK_TOKEN)"),
    ) -> None:
        """Usage of a tenant per hour or day, summed from the billing feed (corrections included)."""
        today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        t0 = _parse_time(start, today)
        t1 = _parse_time(end, t0 + timedelta(days=1))
        path = "/v1/usage" if tenant == "all" else f"/v1/tenants/{tenant}/usage"
        params = {"from": t0.isoformat(), "to": t1.isoformat(), "granularity": granularity,
                  "format": "csv" if csv else "json", "by": "subject" if by_subject else "meter"}
        r = _call("GET", _url(url) + path, _token(token), params=params)
        if csv:
            typer.echo(r.text, nl=False)
            return
        from rich.console import Console
        from rich.table import Table

        doc = r.json()
        table = Table(title=f"usage {tenant} {t0:%Y-%m-%d %H:%M} .. {t1:%Y-%m-%d %H:%M} UTC per {granularity}")
        for col in ("tenant", "period", "meter", "attributes", "subject", "quantity", "unit", "corrections"):
            table.add_column(col, justify="right" if col in ("quantity", "corrections") else "left")
        for row in doc["rows"]:
            table.add_row(row["tenant"], row["period_start"], row["meter"],
                          ";".join(f"{k}={v}" for k, v in row["attributes"].items()), row.get("subject", ""),
                          f"{row['quantity']:,}", row["unit"], str(row["corrections"]))
        Console().print(table)

    license_app = typer.Typer(help="Switch protection, instant access or burst on or off (hourly charges; "
                                   "a provider credential: default $DIALBACK_METERING_ADMIN_TOKEN).")

    def _switch(enabled: bool, tenant: str, feature: Feature, group: str | None, url: str | None,
                token: str | None) -> None:
        r = _call("PUT", f"{_url(url)}/v1/tenants/{tenant}/licences/{feature.value}", _token(token, provider=True),
                  json={"enabled": enabled, "group": group})
        lic = r.json()
        scope = f"group {group}" if group else "the whole tenant"
        when = "from this hour" if enabled else "until the end of this hour; data is kept for the grace period"
        typer.echo(f"{feature.value} {'on' if enabled else 'off'} for {scope} of {tenant} ({when}); "
                   f"{len(lic['changes'])} change(s) on record")

    @license_app.command("on")
    def license_on(tenant: str, feature: Feature, group: Optional[str] = typer.Option(None),
                   url: Optional[str] = None, token: Optional[str] = None) -> None:
        """Switch a service on; charged from the current hour."""
        _switch(True, tenant, feature, group, url, token)

    @license_app.command("off")
    def license_off(tenant: str, feature: Feature, group: Optional[str] = typer.Option(None),
                    url: Optional[str] = None, token: Optional[str] = None) -> None:
        """Switch a service off; its meters stop from the next hour."""
        _switch(False, tenant, feature, group, url, token)

    app.add_typer(license_app, name="license")
