"""`dialback tls pin CERT.pem`: the pin an agent gives as --ingest-pin / DIALBACK_AGENT_INGEST_PINS."""

from __future__ import annotations

import ssl
from pathlib import Path

import typer


def pin(cert: Path = typer.Argument(..., help="PEM certificate of ingest (the first one in the file is used)")) -> None:
    """Print the SHA-256 of the certificate's public key (SPKI), as hex."""
    from shared.tls import pem_pin

    try:
        print(pem_pin(cert))
    except (OSError, ValueError, ssl.SSLError) as err:
        typer.echo(f"cannot read a PEM certificate from {cert}: {err}", err=True)
        raise typer.Exit(1) from err


def register(app: typer.Typer) -> None:
    tls = typer.Typer(help="TLS helpers for the agent's connection to ingest.", no_args_is_help=True)
    tls.command("pin")(pin)
    app.add_typer(tls, name="tls")
