"""The `dialback` command: one typer app composed from each part's commands."""

from __future__ import annotations

import importlib

import typer

from deploy.local.cli import stack_app

app = typer.Typer(help="Dialback: continuous data protection and cloudbursting.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)
app.add_typer(stack_app, name="stack")

# Each part owns its commands and adds them through register(app).
_PARTS = [
    "cli.demo",
    "cli.keys",
    "cli.tokens",
    "cli.tls",
    "agent.cli",
    "services.ingest.cli",
    "services.retention.cli",
    "services.recovery.cli",
    "services.metering.cli",
    "services.analyzer.cli",
    "services.burst.cli",
]

for _name in _PARTS:
    try:
        _mod = importlib.import_module(_name)
    except ModuleNotFoundError as _err:
        if not _name.startswith(_err.name or "?"):  # the part exists but an import inside it is broken
            raise
        continue
    _mod.register(app)

if __name__ == "__main__":
    app()
