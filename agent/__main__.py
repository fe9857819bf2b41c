"""`python -m agent protect ...` (same commands as `dialback`), or
`python -m agent` alone to run from DIALBACK_AGENT_* environment variables."""

from __future__ import annotations

import logging
import os
import sys

import typer

from agent.cli import register


def main() -> None:
    if len(sys.argv) == 1:
        from agent.config import AgentSettings
        from agent.runtime import run_agent

        logging.basicConfig(level=os.environ.get("DIALBACK_LOG_LEVEL", "INFO"),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            run_agent(AgentSettings())
        except (OSError, ValueError) as err:
            sys.exit(f"dialback agent: {err}")
        return
    app = typer.Typer(no_args_is_help=True)
    register(app)
    app()


if __name__ == "__main__":
    main()
