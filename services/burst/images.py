"""Where raw images come from: a narrow protocol the recovery service implements.

`materialize` returns a raw image file of the volume at the point. A source
may also offer `validate` (cheap, no image built) so that an impossible point
is refused before any cloud resource is made, `resolve` (pin "latest" to a
concrete point, recorded once per operation) and `release` (the uploaded
image's file may go). `RecoveryImageSource` (recovery_images.py) is the
real one. `FileImageSource` serves files
laid out as <root>/<tenant>/<group>/<volume>/<point>.raw (tests, demos).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from services.burst.errors import UnknownPoint
from shared.tenancy import check_tenant, check_volume


@runtime_checkable
class ImageSource(Protocol):
    def materialize(self, tenant: str, group: str, volume: str, point: str) -> Path: ...


def validate(source: ImageSource, tenant: str, group: str, volume: str, point: str) -> None:
    check = getattr(source, "validate", None)
    if callable(check):
        check(tenant, group, volume, point)


def resolve(source: ImageSource, tenant: str, group: str, volume: str, point: str) -> str:
    """A name for the same bytes forever ("latest" pinned); sources without `resolve` keep the name."""
    pin = getattr(source, "resolve", None)
    return pin(tenant, group, volume, point) if callable(pin) else point


def release(source: ImageSource, path: Path) -> None:
    """Tell the source the image was uploaded and its file is no longer needed."""
    done = getattr(source, "release", None)
    if callable(done):
        done(path)


class FileImageSource:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _dir(self, tenant: str, group: str, volume: str) -> Path:
        return self.root / check_tenant(tenant) / check_volume(group) / check_volume(volume)

    def points(self, tenant: str, group: str, volume: str) -> list[str]:
        d = self._dir(tenant, group, volume)
        return sorted(p.stem for p in d.glob("*.raw")) if d.is_dir() else []

    def validate(self, tenant: str, group: str, volume: str, point: str) -> None:
        self._resolve(tenant, group, volume, point)

    def _resolve(self, tenant: str, group: str, volume: str, point: str) -> Path:
        known = self.points(tenant, group, volume)
        if not known:
            raise UnknownPoint(f"no recovery points for volume {volume!r} of group {group!r} (tenant {tenant}); "
                               "check the names, or wait until the initial sync has completed")
        if point == "latest":
            point = known[-1]
        if point not in known:
            raise UnknownPoint(f"recovery point {point!r} does not exist for {group}/{volume}; "
                               f"known points: {', '.join(known[-5:])} (or use 'latest')")
        return self._dir(tenant, group, volume) / f"{point}.raw"

    def resolve(self, tenant: str, group: str, volume: str, point: str) -> str:
        return self._resolve(tenant, group, volume, point).stem

    def materialize(self, tenant: str, group: str, volume: str, point: str) -> Path:
        return self._resolve(tenant, group, volume, point)
