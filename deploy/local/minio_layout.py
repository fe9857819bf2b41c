"""Which drives the local MinIO serves (docs/foundation.md, "Local MinIO layout").

Two directories as one erasure set with parity 0 (``EC:0``) by default: MinIO
then writes objects with O_DIRECT, straight from its buffers to the disk. A
single-drive MinIO never does (xl-storage turns O_DIRECT off for it), so every
segment went through the page cache: one more copy per MB, and on a VM that
hands free memory back to its host, a page fault per fresh page (about 3.5
ms per MB against 0.25 for a recycled page, measured with dd here). Parity 0
keeps one copy of each object, as the single drive did: both directories
live on the same disk, so parity would buy no safety, only a second write.

The single drive (``data/``) stays in use where it already holds objects (a
stack made before), where the filesystem refuses O_DIRECT (tmpfs, some
overlays), or when ``DIALBACK_STACK_MINIO_DRIVES=1`` asks for it.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

DRIVES = 2
_BLOCK = 4096


def wanted_drives() -> int:
    """``DIALBACK_STACK_MINIO_DRIVES``: 1 or 2 (default 2)."""
    raw = os.environ.get("DIALBACK_STACK_MINIO_DRIVES", "").strip()
    if raw in ("", str(DRIVES)):
        return DRIVES
    if raw == "1":
        return 1
    raise ValueError(f"DIALBACK_STACK_MINIO_DRIVES must be 1 or {DRIVES}, not {raw!r}")


def odirect_supported(directory: Path) -> bool:
    """Whether a file in ``directory`` takes an aligned O_DIRECT write (what MinIO checks at start)."""
    if not hasattr(os, "O_DIRECT"):
        return False
    probe = directory / ".odirect-probe"
    buf = mmap.mmap(-1, _BLOCK)  # page-aligned, as O_DIRECT wants
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o600)
        try:
            return os.write(fd, buf) == _BLOCK
        finally:
            os.close(fd)
    except OSError:
        return False
    finally:
        buf.close()
        probe.unlink(missing_ok=True)


def drives(data_dir: Path) -> list[Path]:
    """The drive directories under ``data_dir`` (created); one means the single-drive layout.

    A layout that already holds MinIO's metadata is always kept, whatever is asked: switching
    would start an empty MinIO beside the objects.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    single = data_dir / "data"
    multi = [data_dir / f"drive{n}" for n in range(1, DRIVES + 1)]
    if (single / ".minio.sys").exists():
        chosen = [single]
    elif all((d / ".minio.sys").exists() for d in multi):
        chosen = multi
    elif wanted_drives() == 1 or not odirect_supported(data_dir):
        chosen = [single]
    else:
        chosen = multi
    for d in chosen:
        d.mkdir(exist_ok=True)
    return chosen


def server_args(paths: list[Path]) -> tuple[list[str], dict[str, str]]:
    """(drive arguments, environment) for ``minio server`` over what :func:`drives` returned."""
    if len(paths) == 1:
        return [str(paths[0])], {}
    return [str(paths[0].parent / f"drive{{1...{len(paths)}}}")], {
        "MINIO_STORAGE_CLASS_STANDARD": "EC:0",  # one copy, as on a single drive (see the docstring)
        # MinIO refuses erasure drives on the root filesystem unless told what counts as a root
        # drive (it means to keep production data off the OS disk; a local stack lives there).
        "MINIO_ROOTDISK_THRESHOLD_SIZE": "1",
    }
