"""``dialback tenant create|list`` and ``dialback serve-ingest``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from shared.auth import TenantExists, TenantsFileError, create_tenant, default_tenants_file, read_tenants
from shared.errors import InvalidName

TenantsFile = Annotated[
    Optional[Path],
    typer.Option("--tenants-file", help="default: $DIALBACK_TENANTS_FILE or $DIALBACK_HOME/tenants.json"),
]


def register(app: typer.Typer) -> None:
    tenant = typer.Typer(help="Tenants and their agent tokens.", no_args_is_help=True)
    err = Console(stderr=True)

    @tenant.command("create")
    def create(name: str, tenants_file: TenantsFile = None) -> None:
        """Create tenant NAME and print its token (shown only this once)."""
        path = tenants_file or default_tenants_file()
        try:
            token = create_tenant(path, name)
        except (TenantExists, InvalidName, TenantsFileError) as e:
            err.print(f"[red]error:[/red] {e}")
            raise typer.Exit(1) from e
        err.print(f"tenant {name} created in {path}; its token is shown only once:")
        # The token alone on stdout, so scripts can capture it.
        print(token)

    @tenant.command("list")
    def list_(tenants_file: TenantsFile = None) -> None:
        """List tenants (names only; tokens are not stored)."""
        path = tenants_file or default_tenants_file()
        try:
            names = sorted(read_tenants(path))
        except (TenantsFileError, InvalidName) as e:
            err.print(f"[red]error:[/red] {e}")
            raise typer.Exit(1) from e
        if not names:
            err.print(f"no tenants in {path}; create one with 'dialback tenant create NAME'")
        for n in names:
            print(n)

    app.add_typer(tenant, name="tenant")

    @app.command("serve-ingest")
    def serve_ingest(
        port: Annotated[Optional[int], typer.Option(help="default: $DIALBACK_INGEST_PORT or 8100")] = None,
    ) -> None:
        """Run the ingest service on 127.0.0.1 (settings from DIALBACK_* variables)."""
        from services.ingest.__main__ import main
        from services.ingest.config import IngestSettings

        settings = IngestSettings()
        if port is not None:
            settings = settings.model_copy(update={"ingest_port": port})
        main(settings)
