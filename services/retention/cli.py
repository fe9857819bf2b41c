"""``dialback serve-retention``: run the retention worker in the foreground."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("serve-retention")
    def serve_retention() -> None:
        """Consume every tenant's write topic into journal segments in MinIO (settings from DIALBACK_*)."""
        from services.retention.__main__ import main

        main()

    from services.retention.policy_cli import register as register_policy

    register_policy(app)

    from services.retention.storage_cli import register as register_storage

    register_storage(app)
