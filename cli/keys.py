"""``dialback keys``: rotate the master key (re-wrap), rotate a tenant's data key, re-key its objects."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console


def _paths(master_key_file: Path | None, keyring_file: Path | None) -> tuple[Path, Path]:
    from shared.objectstore.factory import getattr_env

    master = master_key_file or (Path(getattr_env("DIALBACK_MASTER_KEY_FILE")) if getattr_env(
        "DIALBACK_MASTER_KEY_FILE") else None)
    if master is None:
        raise typer.BadParameter("give --master-key-file or set DIALBACK_MASTER_KEY_FILE "
                                 "(`source $DIALBACK_HOME/stack.env` sets it)")
    ring = keyring_file or (Path(getattr_env("DIALBACK_KEYRING_FILE")) if getattr_env("DIALBACK_KEYRING_FILE")
                            else master.parent / "keyring.json")
    return master, ring


def register(app: typer.Typer) -> None:
    keys = typer.Typer(help="Provider master key and the keys it wraps.", no_args_is_help=True)
    err = Console(stderr=True)

    @keys.command("rotate-master")
    def rotate_master(
        master_key_file: Annotated[Optional[Path], typer.Option(help="default: $DIALBACK_MASTER_KEY_FILE")] = None,
        keyring_file: Annotated[Optional[Path], typer.Option(
            help="default: $DIALBACK_KEYRING_FILE or keyring.json next to the master key")] = None,
    ) -> None:
        """Replace the master key and re-wrap every key under it (stop the services first)."""
        from shared.crypto.keyring import KeyringError
        from shared.crypto.rotate import rotate_master_file

        master, ring = _paths(master_key_file, keyring_file)
        try:
            n = rotate_master_file(master, ring)
        except (KeyringError, OSError) as e:
            err.print(f"[red]error:[/red] {e}")
            raise typer.Exit(1) from e
        err.print(f"re-wrapped {n} keys under a new master key in {master}; restart the Dialback services "
                  "so they load it (no stored object was rewritten)")

    from cli.keys_data import register_data_keys

    register_data_keys(keys, err)
    app.add_typer(keys, name="keys")
