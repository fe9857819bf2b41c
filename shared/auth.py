"""Tenant tokens: the tenants file and bearer-token authentication.

The file (``$DIALBACK_TENANTS_FILE``, default ``$DIALBACK_HOME/tenants.json``)
holds only SHA-256 digests of tokens, never the tokens themselves::

    {"tenants": {"<tenant>": {"token_sha256": "<hex>"}}}

Contract:

* :func:`create_tenant` generates a random token, stores its digest and
  returns the token; it is shown once and cannot be recovered from the file.
  Writers replace the file atomically under an exclusive lock, so readers
  never see half a file and two writers never lose each other's tenants.
* :class:`TenantAuth` answers "whose token is this?" and notices a changed
  file (mtime, size, inode) on the next call, so new tenants work without a
  restart. Digests are compared in constant time, against every tenant, so
  timing reveals neither a digest nor which tenant came close.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
import tempfile
import threading
from pathlib import Path
from typing import Iterator

from shared.config import default_home
from shared.errors import DialbackError
from shared.tenancy import check_tenant

log = logging.getLogger(__name__)

TENANTS_FILE_ENV = "DIALBACK_TENANTS_FILE"


class AuthError(DialbackError):
    pass


class TenantExists(AuthError):
    pass


class TenantsFileError(AuthError):
    """The tenants file exists but cannot be read as a tenants file."""


def default_tenants_file() -> Path:
    env = os.environ.get(TENANTS_FILE_ENV)
    return Path(env) if env else default_home() / "tenants.json"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def read_tenants(path: Path) -> dict[str, str]:
    """tenant -> token digest; a missing file means no tenants yet."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        doc = json.loads(raw)
        tenants = doc["tenants"]
        out = {name: str(entry["token_sha256"]) for name, entry in tenants.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise TenantsFileError(
            f"tenants file {path} is not valid ({err!r}); expected "
            '{"tenants": {"<tenant>": {"token_sha256": "<hex>"}}} - fix or restore it'
        ) from err
    for name in out:
        check_tenant(name)
    return out


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # A separate lock file: the tenants file itself is replaced by rename,
    # so a lock on it would be lost with the old inode.
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write(path: Path, tenants: dict[str, str]) -> None:
    doc = {"tenants": {name: {"token_sha256": tenants[name]} for name in sorted(tenants)}}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def create_tenant(path: Path, name: str) -> str:
    """Add tenant ``name`` with a fresh random token; returns the token."""
    check_tenant(name)
    path = Path(path)
    with _locked(path):
        tenants = read_tenants(path)
        if name in tenants:
            raise TenantExists(f"tenant {name!r} already exists in {path}; pick another name")
        token = secrets.token_urlsafe(32)
        tenants[name] = token_digest(token)
        _write(path, tenants)
    return token


class TenantAuth:
    """Bearer-token lookup over a tenants file that may change while running."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else default_tenants_file()
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._digests: dict[str, bytes] = {}

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp == self._stamp:
                return
            if stamp is None:
                self._digests, self._stamp = {}, None
                return
            try:
                tenants = read_tenants(self.path)
            except DialbackError as err:
                # Keep the last good view: a hand-edit gone wrong should not
                # lock every tenant out. The error is logged for the operator.
                log.error("%s; still using the previous tenants", err)
                self._stamp = stamp
                return
            self._digests = {name: bytes.fromhex(d) if _is_hex(d) else b"" for name, d in tenants.items()}
            self._stamp = stamp

    def authenticate(self, token: str | None) -> str | None:
        """The tenant whose token this is, or None."""
        self._refresh()
        if not token:
            return None
        presented = hashlib.sha256(token.encode("utf-8")).digest()
        found = None
        for name, digest in self._digests.items():
            # No early exit: every tenant costs the same.
            if hmac.compare_digest(presented, digest) and found is None:
                found = name
        return found

    def tenants(self) -> list[str]:
        self._refresh()
        return sorted(self._digests)


def _is_hex(value: str) -> bool:
    try:
        return len(bytes.fromhex(value)) == 32
    except ValueError:
        return False
