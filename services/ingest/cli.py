"""``dialback tenant create|list`` and ``dialback serve-ingest``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from shared.auth import TenantExists, TenantsFileError, default_tenants_file, read_tenants
from shared.errors import InvalidName

TenantsFile = Annotated[
    Optional[Path],
    typer.Option("--tenants-file", help="default: $DIALBACK_TENANTS_FILE or $DIALBACK_HOME/tenants.json"),
]


def register(app: typer.Typer) -> None:
    tenant = typer.Typer(help="Tenants and their credentials (see also `dialback token`).", no_args_is_help=True)
    err = Console(stderr=True)

    @tenant.command("create")
    def create(
        name: str,
        tenants_file: TenantsFile = None,
        credentials: Annotated[Optional[Path], typer.Option(
            help="agent credentials file to write (0600); default ./<NAME>.credentials.json")] = None,
        master_key_file: Annotated[Optional[Path], typer.Option(
            help="default: $DIALBACK_MASTER_KEY_FILE; without one the tenant ships plaintext")] = None,
    ) -> None:
        """Create tenant NAME: write its agent credentials file (ingest only) and print its operator token (once)."""
        from services.ingest.provision import create_tenant_with_credentials
        from shared.credentials import CredentialsError
        from shared.crypto.keyring import Keyring, KeyringError, load_master_key
        from shared.config import CommonSettings
        from shared.objectstore.factory import getattr_env, keyring_from_env

        path = tenants_file or default_tenants_file()
        creds_path = credentials or Path(f"{name}.credentials.json")
        try:
            if master_key_file:
                ring_path = getattr_env("DIALBACK_KEYRING_FILE") or str(master_key_file.parent / "keyring.json")
                ring = Keyring(load_master_key(master_key_file), ring_path)
            else:
                ring = keyring_from_env()
            made = create_tenant_with_credentials(path, name, creds_path, ring, CommonSettings().bucket_prefix)
        except (TenantExists, InvalidName, TenantsFileError, CredentialsError, KeyringError, OSError) as e:
            err.print(f"[red]error:[/red] {e}")
            raise typer.Exit(1) from e
        if ring is None:
            err.print("[yellow]warning:[/yellow] no master key (DIALBACK_MASTER_KEY_FILE): this tenant has no "
                      "transport key and its agents ship batches unencrypted")
        err.print(f"tenant {name} created in {path}; agent credentials written to {creds_path} (0600): hand "
                  "that file to the agent (--credentials); it can only register groups and ship batches.\n"
                  f"The tenant operator token (credential {made.operator_id}: list, recover, export, burst; "
                  "keep it off the protected servers) is shown only once:")
        # The operator token alone on stdout, so scripts can capture it.
        print(made.operator_token)

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
