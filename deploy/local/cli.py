"""The `dialback stack` commands."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from deploy.local.process import StartError
from deploy.local.stack import Stack

stack_app = typer.Typer(help="Run Kafka and MinIO (and optionally OpenStack) locally on 127.0.0.1.", no_args_is_help=True)
console = Console()


@stack_app.command()
def up(with_openstack: bool = typer.Option(False, "--with-openstack", help="also start a local OpenStack control plane")) -> None:
    """Provision (cached) and start the local stack; idempotent."""
    stack = Stack.default()
    try:
        env = stack.up(echo=lambda m: console.print(f"[cyan]{m}[/]"))
        if with_openstack:
            from deploy.local.openstack import provision as os_provision

            with console.status("starting OpenStack (keystone, glance, placement, nova, neutron, cinder) …"):
                os_provision.provision(stack.cache)
                eps = os_provision.start(stack.home, stack.cache)
            console.print(f"[green]OpenStack[/] at {getattr(eps, 'auth_url', eps)}")
    except StartError as err:
        console.print(f"[red]error:[/] {err}")
        raise typer.Exit(1) from err
    console.print(f"[green]stack is up[/]; environment in {stack.home / 'stack.env'} "
                  f"(source it: `. {stack.home / 'stack.env'}`)")
    for k, v in env.items():
        if "SECRET" not in k:
            console.print(f"  {k}={v}")


@stack_app.command()
def provision() -> None:
    """Download/build Kafka, MinIO and toxiproxy into the cache (idempotent; nothing is started)."""
    try:
        Stack.default().provision(echo=lambda m: console.print(f"[cyan]{m}[/]"))
    except StartError as err:
        console.print(f"[red]error:[/] {err}")
        raise typer.Exit(1) from err


@stack_app.command()
def down(with_openstack: bool = typer.Option(False, "--with-openstack", help="also stop the local OpenStack")) -> None:
    """Stop the local stack (data is kept)."""
    stack = Stack.default()
    if with_openstack:
        from deploy.local.openstack import provision as os_provision

        for name in os_provision.stop(stack.home, stack.cache):
            console.print(f"stopped {name}")
    stack.down(echo=lambda m: console.print(m))


@stack_app.command()
def status() -> None:
    """Where each server listens, whether it is healthy, and where its log is."""
    table = Table("server", "address", "pid", "health", "log")
    rows = Stack.default().status()
    for r in rows:
        health = "[green]healthy[/]" if r["healthy"] else ("[yellow]starting/unhealthy[/]" if r["running"] else "[red]stopped[/]")
        table.add_row(r["name"], r["address"], str(r["pid"] or "-"), health, r["log"])
    console.print(table)
    for r in rows:
        if "memory" in r:
            console.print(f"{r['name']}: {r['memory']}")
    if not all(r["healthy"] for r in rows):
        raise typer.Exit(1)
