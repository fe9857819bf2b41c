"""``dialback keys rotate-data | rekey | data-keys``: a tenant's data key generations (docs/encryption.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

MasterOpt = Annotated[Optional[Path], typer.Option(help="default: $DIALBACK_MASTER_KEY_FILE")]
RingOpt = Annotated[Optional[Path], typer.Option(help="default: $DIALBACK_KEYRING_FILE or keyring.json next to "
                                                      "the master key")]
TenantOpt = Annotated[str, typer.Option("--tenant", help="tenant id (its bucket's data key)")]


def _keyring(master_key_file: Path | None, keyring_file: Path | None):
    from cli.keys import _paths
    from shared.crypto.keyring import Keyring, load_master_key

    master, ring = _paths(master_key_file, keyring_file)
    return Keyring(load_master_key(master), ring)


def _bucket(tenant: str):
    from shared.config import CommonSettings
    from shared.tenancy import tenant_bucket

    s = CommonSettings()
    return s, tenant_bucket(tenant, s.bucket_prefix)


def register_data_keys(keys: typer.Typer, err: Console) -> None:
    from shared.crypto.keyring import KeyringError
    from shared.objectstore import ObjectStoreError

    @keys.command("rotate-data")
    def rotate_data(tenant: TenantOpt, master_key_file: MasterOpt = None, keyring_file: RingOpt = None) -> None:
        """Add a new data key generation for TENANT: new objects are sealed under it, old ones stay readable."""
        from shared.crypto.data_keys import DataKeys

        try:
            _, bucket = _bucket(tenant)
            dk = DataKeys(_keyring(master_key_file, keyring_file))
            if not dk.generations(bucket):  # a typo must not mint keys for a tenant that does not exist
                raise KeyringError(f"bucket {bucket} has no data key yet: check the tenant id (and "
                                   "DIALBACK_BUCKET_PREFIX); a new tenant gets one from `dialback tenant create`")
            gen = dk.rotate(bucket)
        except (KeyringError, OSError, ValueError) as e:
            err.print(f"[red]error:[/red] {e}")
            raise typer.Exit(1) from e
        err.print(f"bucket {bucket} now seals new objects under data key generation {gen.id}; running services use "
                  "it from their next write. Run `dialback keys rekey --tenant "
                  f"{tenant}` to rewrite older objects under it")

    @keys.command("data-keys")
    def data_keys(tenant: TenantOpt, master_key_file: MasterOpt = None, keyring_file: RingOpt = None) -> None:
        """List TENANT's data key generations (newest last); no key material is printed."""
        from shared.crypto.data_keys import DataKeys

        try:
            _, bucket = _bucket(tenant)
            gens = DataKeys(_keyring(master_key_file, keyring_file)).generations(bucket)
        except (KeyringError, OSError, ValueError) as e:
            err.print(f"[red]error:[/red] {e}")
            raise typer.Exit(1) from e
        table = Table("generation", "created (UTC)", "keyring entry", title=f"data keys of {bucket}")
        for g in gens:
            table.add_row(str(g.id), g.created or "before rotation existed", g.entry)
        Console().print(table)

    @keys.command("rekey")
    def rekey(
        tenant: TenantOpt,
        retire: Annotated[bool, typer.Option("--retire", help="afterwards, remove the older generations' keys "
                                                              "(only if a fresh scan finds no object under them)")]
        = False,
        start_after: Annotated[str, typer.Option(help="resume after this object key (a stopped run prints it)")] = "",
        master_key_file: MasterOpt = None, keyring_file: RingOpt = None,
    ) -> None:
        """Rewrite TENANT's objects sealed under older data key generations (or DBE1) under the newest one."""
        from shared.objectstore.encrypted import EncryptedObjectStore
        from shared.objectstore.minio import MinioObjectStore
        from shared.objectstore.rekey import RekeyError, rekey_bucket, retire_old_generations

        stats = None
        try:
            s, bucket = _bucket(tenant)
            store = EncryptedObjectStore(MinioObjectStore.from_settings(s), _keyring(master_key_file, keyring_file))
            if not store.bucket_exists(bucket):
                raise RekeyError(f"tenant {tenant!r} has no bucket {bucket!r}; check the tenant id and "
                                 "DIALBACK_S3_* / DIALBACK_BUCKET_PREFIX")
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("{task.fields[note]}"), TimeElapsedColumn(), console=err) as bar:
                task = bar.add_task(f"rekey {bucket}", total=None, note="")

                def step(st, info) -> None:
                    nonlocal stats
                    stats = st
                    bar.update(task, completed=st.scanned, note=f"{st.rewritten} rewritten, {st.current} current, "
                                                                f"{st.bytes_rewritten / 2**20:.1f} MiB")

                stats = rekey_bucket(store, bucket, start_after, progress=step)
            err.print(f"{bucket}: {stats.scanned} objects, {stats.rewritten} rewritten under generation "
                      f"{stats.newest}, {stats.current} already under it, {stats.changed_meanwhile} changed by a "
                      f"service meanwhile (left as written), {stats.leases_waiting} leases left to their holders")
            for key, why in stats.damaged:
                err.print(f"[yellow]not re-keyed[/yellow] {key}: {why}")
            if retire:
                gone = retire_old_generations(store, bucket)
                err.print(f"retired data key generations {gone or 'none'} of {bucket}")
        except (RekeyError, KeyringError, ObjectStoreError, OSError, ValueError) as e:
            resume = f"; resume with --start-after {stats.last_key!r}" if stats and stats.last_key else ""
            err.print(f"[red]error:[/red] {e}{resume}")
            raise typer.Exit(1) from e
        if stats.damaged:
            err.print("some objects do not open and were left as they are: run `dialback verify` to see what they hold")
            raise typer.Exit(1)
