"""Where the analyzer keeps uploaded profiles: one directory per tenant, a count cap, streamed uploads.

Layout: ``<profile dir>/<tenant>/<name>``. A tenant's requests only ever resolve
names inside its own directory (names are plain file names), so one tenant can
neither read, list nor infer another's profiles.

An upload is streamed to a hidden temporary file beside its target in chunks
written by a worker thread (the event loop never blocks on the disk and never
holds the body), counted against the size cap as it arrives, verified in a
worker thread (at most ``verify_slots`` at once: verification reads the file
into memory), then renamed into place: readers never see a half-written or
unverified profile, and a refused upload leaves nothing behind. Each upload in
progress takes one of the tenant's ``max_profiles`` slots until it ends, so
neither many stored profiles nor many concurrent uploads can fill the disk.

Used from the one event loop of the app (slot accounting has no lock).
"""

from __future__ import annotations

import asyncio
import mmap
import os
import re
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import AsyncIterator, Iterator

from agent.profile.reader import Profile, parse_profile
from shared.errors import DialbackError
from shared.tenancy import check_tenant

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
WRITE_BYTES = 1 << 20  # gather this much before handing a write to a worker thread


class ProfileStoreError(DialbackError):
    pass


class BadProfileName(ProfileStoreError):
    pass


class ProfileTooLarge(ProfileStoreError):
    pass


class TooManyProfiles(ProfileStoreError):
    pass


class ProfileStore:
    def __init__(self, root: Path, max_bytes: int, max_profiles: int, verify_slots: int = 2) -> None:
        self.root, self.max_bytes, self.max_profiles = Path(root), max_bytes, max_profiles
        self._uploading: dict[str, int] = {}
        self._verify = asyncio.Semaphore(verify_slots)

    def tenant_dir(self, tenant: str) -> Path:
        return self.root / check_tenant(tenant)

    def path(self, tenant: str, name: str) -> Path:
        """The file for a profile name; names are plain file names, so nothing outside the directory is reachable."""
        if not _NAME.match(name):
            raise BadProfileName(f"profile name {name!r} must be 1-128 letters, digits, '.', '_' or '-' "
                                 "and not start with a dot")
        return self.tenant_dir(tenant) / name

    def names(self, tenant: str) -> list[str]:
        d = self.tenant_dir(tenant)
        if not d.is_dir():
            return []
        return sorted(p.name for p in d.iterdir() if p.is_file() and not p.name.startswith("."))

    def listing(self, tenant: str) -> list[dict]:
        d = self.tenant_dir(tenant)
        return [{"name": n, "bytes": (d / n).stat().st_size} for n in self.names(tenant)]

    def delete(self, tenant: str, name: str) -> bool:
        try:
            self.path(tenant, name).unlink()
        except FileNotFoundError:
            return False
        return True

    @contextmanager
    def _slot(self, tenant: str, name: str) -> Iterator[None]:
        held = len(set(self.names(tenant)) - {name}) + self._uploading.get(tenant, 0)
        if held + 1 > self.max_profiles:
            raise TooManyProfiles(f"tenant {tenant!r} keeps {held} profiles (uploads in progress included), the "
                                  f"limit is {self.max_profiles}; delete one (DELETE /v1/profiles/<name>) or ask the "
                                  "provider to raise DIALBACK_ANALYZER_MAX_PROFILES_PER_TENANT")
        self._uploading[tenant] = self._uploading.get(tenant, 0) + 1
        try:
            yield
        finally:
            self._uploading[tenant] -= 1
            if not self._uploading[tenant]:
                del self._uploading[tenant]

    def _too_large(self) -> ProfileTooLarge:
        return ProfileTooLarge(f"profile is over {self.max_bytes >> 20} MiB; raise DIALBACK_ANALYZER_MAX_UPLOAD_MB "
                               "or split the recording")

    async def upload(self, tenant: str, name: str, chunks: AsyncIterator[bytes],
                     declared: int | None = None) -> tuple[Profile, int]:
        """Stream, verify and store a profile; (the verified profile, its size). Nothing is stored on error."""
        path = self.path(tenant, name)
        if declared is not None and declared > self.max_bytes:
            raise self._too_large()  # before a byte is read
        with self._slot(tenant, name):
            await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
            tmp = path.with_name(f".{name}.{uuid.uuid4().hex}.upload")
            fh = await asyncio.to_thread(open, tmp, "wb")
            try:
                size = await self._spool(chunks, fh)
                fh.close()
                async with self._verify:
                    prof = await asyncio.to_thread(_verify, tmp, name)
                await asyncio.to_thread(os.replace, tmp, path)  # readers never see a half-written profile
            except BaseException:
                fh.close()
                tmp.unlink(missing_ok=True)
                raise
        return prof, size

    async def _spool(self, chunks: AsyncIterator[bytes], fh) -> int:
        size, pending, pending_bytes = 0, [], 0
        async for chunk in chunks:
            size += len(chunk)
            if size > self.max_bytes:
                raise self._too_large()
            pending.append(chunk)
            pending_bytes += len(chunk)
            if pending_bytes >= WRITE_BYTES:
                await asyncio.to_thread(fh.writelines, pending)
                pending, pending_bytes = [], 0
        if pending:
            await asyncio.to_thread(fh.writelines, pending)
        await asyncio.to_thread(lambda: (fh.flush(), os.fsync(fh.fileno())))
        return size


def _verify(path: Path, name: str) -> Profile:
    """Verify a profile file through a read-only map: the page cache holds it, not the heap."""
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return parse_profile(b"", name)
        buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    return parse_profile(buf, name)  # the records view keeps the map alive as long as it is used
