"""Real raw disk images for burst tests: ext4 on a sparse file, with known content."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RawImage:
    path: Path
    size: int
    sha256: str
    md5: str


def digest(path: Path) -> tuple[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(4 << 20), b""):
            sha.update(chunk)
            md5.update(chunk)
    return sha.hexdigest(), md5.hexdigest()


def make_raw_image(path: Path, size: int, marker: str) -> RawImage:
    """An ext4 filesystem image of `size` bytes holding /dialback-marker.txt = marker."""
    mkfs = shutil.which("mkfs.ext4") or "/sbin/mkfs.ext4"
    src = path.with_suffix(".content")
    src.mkdir(parents=True, exist_ok=True)
    (src / "dialback-marker.txt").write_text(marker + "\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)
    subprocess.run([mkfs, "-q", "-F", "-L", "dialback", "-d", str(src), str(path)], check=True,
                   capture_output=True)
    shutil.rmtree(src)
    sha, md5 = digest(path)
    return RawImage(path, path.stat().st_size, sha, md5)


def put_point(root: Path, tenant: str, group: str, volume: str, point: str, size: int) -> RawImage:
    """Lay an image out where FileImageSource looks for it."""
    return make_raw_image(root / tenant / group / volume / f"{point}.raw", size, f"{tenant}/{group}/{volume}@{point}")
