"""Finding the build tools the stack needs, with errors that say what to install."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

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


def go_build(what: str, package: str, version: str, out: Path, built_name: str | None = None,
             echo=print, note: str = "once") -> Path:
    """``go install package@version`` into ``out``'s folder (the Go module proxy, cached); returns ``out``.

    ``built_name``: the file go names the binary when it differs from ``out.name`` (renamed to it).
    """
    go = need("go")
    echo(f"building {what} {version} with go install into {out.parent} ({note})")
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(out.parent), "CGO_ENABLED": "0"}
    proc = subprocess.run([go, "install", f"{package}@{version}"], env=env, capture_output=True, text=True)
    built = out.parent / (built_name or out.name)
    if proc.returncode != 0 or not built.exists():
        raise StartError(f"go install of {what} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    if built != out:
        built.rename(out)
    return out


def go_build_module(what: str, module: str, version: str, package: str, out: Path, ldflags: str = "",
                    echo=print, note: str = "once") -> Path:
    """``go build`` of ``package`` inside ``module@version`` as downloaded by the Go module proxy.

    For modules whose go.mod has replace/exclude directives, which ``go install pkg@version``
    refuses: building inside the module's own directory applies its go.mod as the main module's.
    """
    go = need("go")
    echo(f"building {what} {version} with go build into {out.parent} ({note})")
    env = {**os.environ, "CGO_ENABLED": "0"}
    dl = subprocess.run([go, "mod", "download", "-json", f"{module}@{version}"], env=env, capture_output=True,
                        text=True)
    if dl.returncode != 0:
        raise StartError(f"go mod download of {module}@{version} failed (exit {dl.returncode}):\n"
                         f"{(dl.stderr or dl.stdout)[-3000:]}")
    src = json.loads(dl.stdout)["Dir"]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    argv = [go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(tmp), f"./{package}"]
    proc = subprocess.run(argv, cwd=src, env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not tmp.exists():
        raise StartError(f"go build of {what} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    tmp.rename(out)
    return out
