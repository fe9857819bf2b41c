"""``dialback token create|rotate|revoke|list``: credentials in the tenants file (shared.auth).

These edit the tenants file of this host directly (like ``dialback tenant create``);
the services notice the change on their next request, so nothing restarts. The same
operations are on the metering API for the provider (``/v1/tenants/{tenant}/credentials``).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from shared.auth import INGEST, OPERATE, PROVIDER, SCOPES

TenantsFile = Annotated[Optional[Path], typer.Option(
    "--tenants-file", help="default: $DIALBACK_TENANTS_FILE or $DIALBACK_HOME/tenants.json")]
Tenant = Annotated[Optional[str], typer.Argument(help="the tenant (leave out with --provider)")]
Provider = Annotated[bool, typer.Option("--provider", help="a provider credential instead of a tenant's")]


def parse_duration(text: str) -> float:
    """'90', '90s', '15m', '2h', '7d' -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = text.strip().lower()
    try:
        return float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a duration; write e.g. 300, 15m, 2h or 7d") from None


def _when(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def register(app: typer.Typer) -> None:
    from shared.auth import AuthError, default_tenants_file
    from shared.errors import InvalidName

    token = typer.Typer(help="Credentials: create, rotate (with an overlap), revoke, list.", no_args_is_help=True)
    err = Console(stderr=True)

    def owner(tenant: str | None, provider: bool) -> str | None:
        if provider == (tenant is not None):
            raise typer.BadParameter("name a TENANT, or give --provider for a provider credential")
        return None if provider else tenant

    def run(fn):
        try:
            return fn()
        except (AuthError, InvalidName, OSError) as e:
            err.print(f"[red]error:[/red] {e}")
            raise typer.Exit(1) from e

    @token.command("create")
    def create(tenant: Tenant = None, provider: Provider = False,
               scope: Annotated[list[str], typer.Option(
                   help=f"scope(s): {INGEST} (agent), {OPERATE} (tenant operator), {PROVIDER}; "
                        "default operate, or provider with --provider")] = [],  # noqa: B006
               label: Annotated[Optional[str], typer.Option(help="a note shown by `token list`")] = None,
               credentials: Annotated[Optional[Path], typer.Option(
                   help="with --scope ingest: write an agent credentials file (0600) instead of printing")] = None,
               tenants_file: TenantsFile = None) -> None:
        """Issue a new credential; its token is printed once (or written to --credentials for an agent)."""
        from shared.auth import issue

        who = owner(tenant, provider)
        scopes = scope or [PROVIDER if provider else OPERATE]
        path = tenants_file or default_tenants_file()
        if credentials is not None and (who is None or scopes != [INGEST]):
            raise typer.BadParameter("--credentials writes an agent's file: use it with a TENANT and --scope ingest")
        if credentials is not None and credentials.exists():
            raise typer.BadParameter(f"{credentials} already exists; choose another path", param_hint="--credentials")
        new = run(lambda: issue(path, who, scopes, label=label))
        err.print(f"credential {new.credential.id} ({', '.join(new.credential.scopes)}) of "
                  f"{who or 'the provider'} added to {path}")
        if credentials is not None:
            _write_agent_file(credentials, who, new.token, err)
            return
        err.print("its token is shown only once:")
        print(new.token)

    @token.command("rotate")
    def rotate_(tenant: Tenant = None, credential: Annotated[str, typer.Option(
                    "--id", help="the credential to rotate (see `dialback token list`)")] = ...,
                overlap: Annotated[str, typer.Option(
                    help="how long the old token keeps working, e.g. 15m, 2h, 7d")] = "1h",
                provider: Provider = False,
                credentials: Annotated[Optional[Path], typer.Option(
                    help="an agent credentials file to update in place with the new token")] = None,
                tenants_file: TenantsFile = None) -> None:
        """Issue a new token with the same scopes; the old one works until the overlap ends, then never."""
        from shared.auth import list_credentials, rotate

        who = owner(tenant, provider)
        path = tenants_file or default_tenants_file()
        secs = parse_duration(overlap)
        new = run(lambda: rotate(path, who, credential, secs))
        old = next(c for c in list_credentials(path, who) if c.id == credential)
        err.print(f"credential {credential} rotated: the old token works until {_when(old.not_after)}; "
                  f"new credential {new.credential.id} ({', '.join(new.credential.scopes)})")
        if credentials is not None:
            _replace_agent_token(credentials, new.token, err)
            return
        err.print("the new token is shown only once:")
        print(new.token)

    @token.command("revoke")
    def revoke_(tenant: Tenant = None, credential: Annotated[str, typer.Option("--id")] = ...,
                provider: Provider = False, tenants_file: TenantsFile = None) -> None:
        """Stop a credential now (its token is refused on the services' next request)."""
        from shared.auth import revoke

        who = owner(tenant, provider)
        path = tenants_file or default_tenants_file()
        c = run(lambda: revoke(path, who, credential))
        err.print(f"credential {c.id} of {who or 'the provider'} revoked at {_when(c.revoked)}")

    @token.command("list")
    def list_(tenant: Tenant = None, provider: Provider = False, tenants_file: TenantsFile = None) -> None:
        """Credentials of a tenant (ids, scopes, state; never tokens or digests)."""
        from rich.table import Table

        from shared.auth import list_credentials

        who = owner(tenant, provider)
        path = tenants_file or default_tenants_file()
        creds = run(lambda: list_credentials(path, who))
        table = Table(title=f"credentials of {who or 'the provider'}")
        for col in ("id", "scopes", "label", "created", "state", "until"):
            table.add_column(col)
        now = time.time()
        for c in creds:
            table.add_row(c.id, ",".join(c.scopes), c.label or "", _when(c.created), c.state(now),
                          _when(c.revoked if c.revoked is not None else c.not_after))
        Console().print(table)

    @token.command("scopes")
    def scopes_() -> None:
        """The scopes a credential can hold, and what each allows."""
        for name, what in SCOPES.items():
            print(f"{name}\t{what}")

    app.add_typer(token, name="token")


def _write_agent_file(path: Path, tenant: str, tok: str, err: Console) -> None:
    from shared.credentials import AgentCredentials, write_credentials
    from shared.crypto.keyring import transport_entry
    from shared.objectstore.factory import keyring_from_env

    ring = keyring_from_env()
    key = ring.data_key(transport_entry(tenant)) if ring is not None and ring.find(transport_entry(tenant)) else None
    write_credentials(path, AgentCredentials(tenant, tok, key))
    err.print(f"agent credentials written to {path} (0600)" + ("" if key else "; no transport key (no keyring)"))


def _replace_agent_token(path: Path, tok: str, err: Console) -> None:
    from dataclasses import replace

    from shared.credentials import read_credentials, replace_credentials

    replace_credentials(path, replace(read_credentials(path), token=tok))
    err.print(f"{path} now holds the new token; restart the agent (or let it re-read the file) before the "
              "overlap ends")
