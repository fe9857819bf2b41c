"""The control plane's own venv: built once into the cache, reused afterwards.

OpenStack's pins conflict with the project's, so its services never share the
project venv. A second run finds the stamp (the hash of requirements.txt) and
downloads and builds nothing.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from deploy.local.openstack.layout import Layout
from deploy.local.process import StartError

REQUIREMENTS = Path(__file__).with_name("requirements.txt")
# Our ml2 mechanism driver is installed into the venv as a tiny package so that
# neutron can load it by entry point (the only way ml2 loads drivers).
ML2_DRIVER = Path(__file__).with_name("ml2_loopback")


def _wanted() -> str:
    h = hashlib.sha256(REQUIREMENTS.read_bytes())
    for f in sorted(ML2_DRIVER.rglob("*.py")):
        h.update(f.read_bytes())
    return h.hexdigest()


def stamp(layout: Layout) -> Path:
    return layout.venv / ".dialback-requirements.sha256"


def is_built(layout: Layout) -> bool:
    try:
        return stamp(layout).read_text().strip() == _wanted()
    except OSError:
        return False


def ensure(layout: Layout, log: Path) -> bool:
    """Build the venv unless an identical one exists; True if it built anything."""
    if is_built(layout):
        return False
    python = shutil.which("python3.11") or sys.executable
    building = layout.venv.with_name("venv.building")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        if not (building / "bin" / "pip").exists():
            subprocess.run([python, "-m", "venv", str(building)], check=True, stdout=out, stderr=out)
        r = subprocess.run([str(building / "bin" / "pip"), "install", "-q", "-r", str(REQUIREMENTS)],
                           stdout=out, stderr=out)
        if r.returncode != 0:
            raise StartError(f"installing the OpenStack venv failed; see {log}. "
                             "PyPI must be reachable; uwsgi needs a C compiler and Python headers.")
    _install_ml2_driver(building)
    # Build aside and rename, so an interrupted build is never mistaken for a good one.
    if layout.venv.exists():
        shutil.rmtree(layout.venv)
    building.rename(layout.venv)
    _fix_shebangs(building, layout.venv)
    stamp(layout).write_text(_wanted())
    return True


def _install_ml2_driver(venv_dir: Path) -> None:
    """Copy the driver in and declare its entry point (no wheel build: the venv lacks `wheel`)."""
    site = next((venv_dir / "lib").glob("python3*/site-packages"))
    shutil.copytree(ML2_DRIVER / "dialback_ml2", site / "dialback_ml2", dirs_exist_ok=True)
    info = site / "dialback_ml2_loopback-0.1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dialback-ml2-loopback\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        "[neutron.ml2.mechanism_drivers]\ndialback_loopback = dialback_ml2.driver:LoopbackMechanismDriver\n")
    (info / "RECORD").write_text("")


def _fix_shebangs(old: Path, new: Path) -> None:
    """Console scripts name the interpreter by absolute path; point them at the final dir."""
    old_b, new_b = str(old).encode(), str(new).encode()
    for script in (new / "bin").iterdir():
        if script.is_file() and not script.is_symlink():
            try:
                data = script.read_bytes()
            except OSError:
                continue
            if data.startswith(b"#!") and old_b in data[:400]:
                script.write_bytes(data.replace(old_b, new_b, 1))
    cfg = new / "pyvenv.cfg"
    if cfg.exists():
        cfg.write_text(cfg.read_text().replace(str(old), str(new)))
