"""Finding the build tools the stack needs, with errors that say what to install."""

from __future__ import annotations

import shutil

from deploy.local.process import StartError

_HINTS = {
    "java": "Install a Java 17+ runtime (Debian: apt-get install -y openjdk-17-jre-headless).",
    "mvn": "Install Apache Maven (Debian: apt-get install -y maven), or set KAFKA_HOME to an unpacked Kafka 3.9 tarball.",
    "go": "Install Go 1.24+ (https://go.dev/doc/install), or put `minio` and `toxiproxy-server` binaries on PATH.",
}


def need(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise StartError(f"`{tool}` is not on PATH. {_HINTS.get(tool, '')}".strip())
    return path
