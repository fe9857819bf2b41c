"""Docker Compose (the ``docker compose`` CLI plugin), built from its Go module like MinIO.

Machines here have the docker client but no compose plugin and no engine; the plugin alone is
enough to validate deploy/compose.yaml (``docker compose config``), which the suite does
(tests/deploy/test_compose.py). ``provision`` builds it once into the cache and links it as
``$DOCKER_CONFIG/cli-plugins/docker-compose`` (default ~/.docker) unless a plugin is there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from deploy.local.tools import go_build_module

# A release of github.com/docker/compose the Go module proxy serves and this machine's Go builds.
COMPOSE_MODULE = "github.com/docker/compose/v5"
COMPOSE_VERSION = "v5.6.0"


def binary(cache: Path) -> Path:
    return cache / "docker-compose" / COMPOSE_VERSION / "docker-compose"


def plugin_path() -> Path:
    base = Path(os.environ["DOCKER_CONFIG"]) if os.environ.get("DOCKER_CONFIG") else Path.home() / ".docker"
    return base / "cli-plugins" / "docker-compose"


def _works(argv: list[str]) -> bool:
    try:
        return subprocess.run([*argv, "version"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def provision(cache: Path, echo=print) -> Path:
    """Build (once) the compose binary and install it as the docker CLI plugin; idempotent."""
    out = binary(cache)
    if not out.exists():
        go_build_module("docker compose", COMPOSE_MODULE, COMPOSE_VERSION, "cmd", out, echo=echo,
                        ldflags=f"-w -X {COMPOSE_MODULE}/internal.Version={COMPOSE_VERSION}",
                        note="once, a few minutes")
    plugin = plugin_path()
    if not plugin.exists() and not plugin.is_symlink():  # never replace a plugin someone installed
        plugin.parent.mkdir(parents=True, exist_ok=True)
        plugin.symlink_to(out)
    return out


def command(cache: Path) -> list[str]:
    """How to run compose here: ``docker compose`` when the client has the plugin, else the binary."""
    docker = shutil.which("docker")
    if docker and _works([docker, "compose"]):
        return [docker, "compose"]
    return [str(provision(cache))]
