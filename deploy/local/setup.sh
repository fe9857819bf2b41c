#!/usr/bin/env bash
# Provision everything Dialback needs on a fresh Debian machine, idempotently:
# Debian packages, the project's virtualenv, and the cached Kafka jars and
# MinIO, toxiproxy and docker compose builds. A second run downloads and builds nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."

APT_PACKAGES=(libnbd-bin python3-libnbd nbdkit e2fsprogs fuse3 qemu-utils util-linux maven golang-go default-jre-headless restic)
PYTHON=${PYTHON:-python3}

say() { printf '\033[36m[setup]\033[0m %s\n' "$*"; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  case "$pkg" in  # toolchains already on PATH (e.g. from the machine image) are good enough
    maven) command -v mvn >/dev/null && continue ;;
    golang-go) command -v go >/dev/null && continue ;;
    default-jre-headless) command -v java >/dev/null && continue ;;
  esac
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  say "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

stamp=.venv/.dialback-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing Python packages into .venv"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi

say "provisioning Kafka, MinIO, toxiproxy and the docker compose plugin (cached in ${DIALBACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dialback})"
.venv/bin/dialback stack provision
say "ready"
