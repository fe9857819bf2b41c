"""A real ext4 filesystem on top of an NBD export: nbdfuse + losetup + mkfs.ext4 + mount.

Root only. Everything is torn down in reverse order, even after a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator


def _run(*argv: str, check: bool = True) -> str:
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({p.returncode}): {p.stderr.strip()}")
    return p.stdout.strip()


def tools_missing() -> list[str]:
    return [t for t in ("nbdfuse", "losetup", "mkfs.ext4", "mount", "umount", "fsfreeze", "fusermount3")
            if shutil.which(t) is None]


@contextlib.contextmanager
def nbd_filesystem(where: int | Path, export: str, mkfs: bool = True, mnt: Path | None = None) -> Iterator[Path]:
    """Yields the mount point (``mnt``, or a fresh one) of an ext4 filesystem on the export, at
    ``where``: the agent's NBD Unix socket, or a TCP port of 127.0.0.1."""
    work = Path(tempfile.mkdtemp(prefix="dialback-nbdfs-"))
    fuse_dir, mnt = work / "fuse", Path(mnt) if mnt is not None else work / "mnt"
    fuse_dir.mkdir()
    mnt.mkdir(parents=True, exist_ok=True)
    uri = f"nbd://127.0.0.1:{where}/{export}" if isinstance(where, int) else f"nbd+unix:///{export}?socket={where}"
    fuse = subprocess.Popen(["nbdfuse", str(fuse_dir / "disk"), uri],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    loop = None
    mounted = False
    try:
        deadline = time.monotonic() + 30
        while not (fuse_dir / "disk").exists():
            if fuse.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nbdfuse did not come up: {fuse.stdout.read().decode(errors='replace') if fuse.stdout else ''}")
            time.sleep(0.1)
        loop = _run("losetup", "--find", "--show", "--direct-io=on", str(fuse_dir / "disk"))
        if mkfs:
            _run("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", loop)
        _run("mount", "-o", "sync" if os.environ.get("DIALBACK_TEST_SYNC_MOUNT") else "defaults", loop, str(mnt))
        mounted = True
        yield mnt
    finally:
        if mounted:
            _run("umount", str(mnt), check=False)
        if loop:
            _run("losetup", "-d", loop, check=False)
        _run("fusermount3", "-u", str(fuse_dir), check=False)
        try:
            fuse.wait(timeout=10)
        except subprocess.TimeoutExpired:
            fuse.kill()
        shutil.rmtree(work, ignore_errors=True)


def freeze(mnt: Path) -> None:
    _run("fsfreeze", "-f", str(mnt))


def thaw(mnt: Path) -> None:
    _run("fsfreeze", "-u", str(mnt))
