"""Credentials: the tenants file, scopes, rotation, revocation and bearer-token lookup.

The file (``$DIALBACK_TENANTS_FILE``, default ``$DIALBACK_HOME/tenants.json``)
holds only SHA-256 digests of tokens, never the tokens themselves::

    {"version": 2,
     "tenants": {"<tenant>": {"credentials": [
         {"id": "c-1a2b3c4d", "sha256": "<hex>", "scopes": ["ingest"], "label": "agent",
          "created": 1764036000.0, "not_after": null, "revoked": null}]}},
     "provider": {"credentials": [{"id": ..., "scopes": ["provider"], ...}]}}

The first version, ``{"tenants": {"<tenant>": {"token_sha256": "<hex>"}}}``, is
still read: such a token is credential ``legacy`` with every tenant scope (it
did everything before scopes existed). The next write stores it in the new form.

Scopes (:data:`SCOPES`) say what a credential may do; a tenant credential
acts only on its own tenant, a provider credential on every tenant. The check
itself is :meth:`shared.bearer.Principal.require`, the one place every
service asks.

Contract:

* :func:`create_tenant` / :func:`issue` generate a random token, store its
  digest and return the token; it is shown once and cannot be recovered from
  the file. Writers replace the file atomically under an exclusive lock, so
  readers never see half a file and two writers never lose each other's work.
* :func:`rotate` issues a new token with the same scopes and gives the old one
  ``not_after = now + overlap``: both work during the overlap, then only the
  new one. :func:`revoke` stops a token at once.
* :class:`TenantAuth` answers "whose token is this, with which scopes?" and
  notices a changed file (mtime, size, inode) on the next call, so new and
  revoked credentials take effect without a restart; expiry is checked on
  every call. Digests are compared in constant time, against every
  credential, so timing reveals neither a digest nor which one came close.
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
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

from shared.config import default_home
from shared.errors import DialbackError
from shared.tenancy import check_tenant

log = logging.getLogger(__name__)

TENANTS_FILE_ENV = "DIALBACK_TENANTS_FILE"

INGEST = "ingest"      # an agent: register its groups, ship batches
OPERATE = "operate"    # a tenant operator: list, recover, export, bookmark, DR tests, usage
PROVIDER = "provider"  # the provider: licences, purge, hooks, credentials, views across tenants
SCOPES = {INGEST: "agent: register groups and ship batches",
          OPERATE: "tenant operator: list, recover, export, bookmark, burst and DR tests, usage",
          PROVIDER: "provider: licences, purge, hooks, credentials of every tenant"}
TENANT_SCOPES = frozenset({INGEST, OPERATE})
LEGACY_ID = "legacy"


class AuthError(DialbackError):
    pass


class TenantExists(AuthError):
    pass


class UnknownTenant(AuthError):
    pass


class UnknownCredential(AuthError):
    pass


class TenantsFileError(AuthError):
    """The tenants file exists but cannot be read as a tenants file."""


@dataclass(frozen=True)
class Credential:
    id: str
    sha256: str = field(repr=False)
    scopes: tuple[str, ...]
    created: float = 0.0
    label: str | None = None
    not_after: float | None = None  # set on rotation: valid until then (the overlap)
    revoked: float | None = None

    def valid_at(self, now: float) -> bool:
        return self.revoked is None and (self.not_after is None or now < self.not_after)

    def state(self, now: float) -> str:
        if self.revoked is not None:
            return "revoked"
        if self.not_after is not None:
            return "expiring" if now < self.not_after else "expired"
        return "active"

    def public(self, now: float) -> dict:
        """What may be shown to anyone allowed to see the credential: never the digest."""
        d = asdict(self)
        del d["sha256"]
        return {**d, "scopes": list(self.scopes), "state": self.state(now)}


@dataclass(frozen=True)
class Identity:
    """Who a valid token belongs to: a tenant (None for the provider) and its scopes."""

    tenant: str | None
    scopes: frozenset[str]
    credential: str


@dataclass(frozen=True)
class Issued:
    credential: Credential
    token: str = field(repr=False)


@dataclass
class Registry:
    tenants: dict[str, list[Credential]] = field(default_factory=dict)
    provider: list[Credential] = field(default_factory=list)

    def credentials(self, tenant: str | None) -> list[Credential]:
        return self.provider if tenant is None else self.tenants[tenant]


def default_tenants_file() -> Path:
    env = os.environ.get(TENANTS_FILE_ENV)
    return Path(env) if env else default_home() / "tenants.json"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_scopes(scopes: Iterable[str], provider: bool) -> tuple[str, ...]:
    allowed = {PROVIDER} if provider else TENANT_SCOPES
    out = tuple(sorted(set(scopes)))
    bad = [s for s in out if s not in allowed]
    if not out or bad:
        meaning = "; ".join(f"{k}: {SCOPES[k]}" for k in sorted(allowed))
        raise AuthError(f"scopes {list(out)} are not valid for a {'provider' if provider else 'tenant'} "
                        f"credential; choose from {sorted(allowed)} ({meaning})")
    return out


def _credential(d: dict) -> Credential:
    return Credential(id=str(d["id"]), sha256=str(d["sha256"]), scopes=tuple(str(s) for s in d["scopes"]),
                      created=float(d.get("created") or 0.0), label=d.get("label"),
                      not_after=None if d.get("not_after") is None else float(d["not_after"]),
                      revoked=None if d.get("revoked") is None else float(d["revoked"]))


def _entry(entry: dict) -> list[Credential]:
    creds = [_credential(c) for c in entry.get("credentials", [])]
    if "token_sha256" in entry:  # version 1: one token that did everything
        creds.insert(0, Credential(LEGACY_ID, str(entry["token_sha256"]), tuple(sorted(TENANT_SCOPES)),
                                   label="from version 1"))
    return creds


def read_registry(path: Path) -> Registry:
    """Every credential in the file; a missing file means none yet."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Registry()
    try:
        doc = json.loads(raw)
        reg = Registry({name: _entry(entry) for name, entry in doc["tenants"].items()},
                       [_credential(c) for c in doc.get("provider", {}).get("credentials", [])])
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise TenantsFileError(
            f"tenants file {path} is not valid ({err!r}); expected "
            '{"version": 2, "tenants": {"<tenant>": {"credentials": [...]}}} (or the version 1 form '
            '{"tenants": {"<tenant>": {"token_sha256": "<hex>"}}}) - fix or restore it'
        ) from err
    for name in reg.tenants:
        check_tenant(name)
    return reg


def read_tenants(path: Path) -> dict[str, list[Credential]]:
    """tenant -> its credentials; a missing file means no tenants yet."""
    return read_registry(path).tenants


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


def _write(path: Path, reg: Registry) -> None:
    def creds(cs: list[Credential]) -> list[dict]:
        return [{**asdict(c), "scopes": list(c.scopes)} for c in cs]

    doc = {"version": 2, "tenants": {n: {"credentials": creds(reg.tenants[n])} for n in sorted(reg.tenants)}}
    if reg.provider:
        doc["provider"] = {"credentials": creds(reg.provider)}
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


@contextlib.contextmanager
def _editing(path: Path) -> Iterator[Registry]:
    path = Path(path)
    with _locked(path):
        reg = read_registry(path)
        yield reg
        _write(path, reg)


def _new(scopes: tuple[str, ...], label: str | None, now: float) -> Issued:
    token = secrets.token_urlsafe(32)
    return Issued(Credential("c-" + secrets.token_hex(4), token_digest(token), scopes, now, label), token)


def _owner(reg: Registry, tenant: str | None, path: Path) -> list[Credential]:
    if tenant is not None and tenant not in reg.tenants:
        raise UnknownTenant(f"no tenant {tenant!r} in {path}; create it with `dialback tenant create {tenant}`")
    return reg.credentials(tenant)


def create_tenant(path: Path, name: str, scopes: Iterable[str] = (INGEST,), label: str | None = "agent",
                  clock: Callable[[], float] = time.time) -> str:
    """Add tenant ``name`` with one fresh credential (an agent's by default); returns its token."""
    check_tenant(name)
    scopes = check_scopes(scopes, provider=False)
    with _editing(path) as reg:
        if name in reg.tenants:
            raise TenantExists(f"tenant {name!r} already exists in {path}; pick another name")
        issued = _new(scopes, label, clock())
        reg.tenants[name] = [issued.credential]
    return issued.token


def issue(path: Path, tenant: str | None, scopes: Iterable[str], label: str | None = None,
          clock: Callable[[], float] = time.time) -> Issued:
    """A new credential for ``tenant`` (None: a provider credential); the token is returned once."""
    scopes = check_scopes(scopes, provider=tenant is None)
    with _editing(path) as reg:
        creds = _owner(reg, tenant, path)
        issued = _new(scopes, label, clock())
        creds.append(issued.credential)
    return issued


def _find(creds: list[Credential], cred_id: str, tenant: str | None) -> int:
    for i, c in enumerate(creds):
        if c.id == cred_id:
            return i
    whose = f"tenant {tenant!r}" if tenant else "the provider"
    raise UnknownCredential(f"{whose} has no credential {cred_id!r}; see `dialback token list`")


def rotate(path: Path, tenant: str | None, cred_id: str, overlap_s: float,
           clock: Callable[[], float] = time.time) -> Issued:
    """A new token with the old one's scopes; the old one keeps working for ``overlap_s`` seconds."""
    if overlap_s < 0:
        raise AuthError(f"overlap must be 0 seconds or more, not {overlap_s}")
    with _editing(path) as reg:
        creds = _owner(reg, tenant, path)
        i = _find(creds, cred_id, tenant)
        now, old = clock(), creds[i]
        if not old.valid_at(now):
            raise AuthError(f"credential {cred_id!r} is {old.state(now)}; issue a new one with `dialback token create`")
        end = now + overlap_s if old.not_after is None else min(old.not_after, now + overlap_s)
        creds[i] = replace(old, not_after=end)
        issued = _new(old.scopes, old.label, now)
        creds.append(issued.credential)
    return issued


def revoke(path: Path, tenant: str | None, cred_id: str, clock: Callable[[], float] = time.time) -> Credential:
    """Stop a credential now (idempotent: revoking twice keeps the first time)."""
    with _editing(path) as reg:
        creds = _owner(reg, tenant, path)
        i = _find(creds, cred_id, tenant)
        if creds[i].revoked is None:
            creds[i] = replace(creds[i], revoked=clock())
        return creds[i]


def list_credentials(path: Path, tenant: str | None) -> list[Credential]:
    reg = read_registry(Path(path))
    return list(_owner(reg, tenant, path))


class TenantAuth:
    """Bearer-token lookup over a tenants file that may change while running."""

    def __init__(self, path: Path | None = None, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path) if path else default_tenants_file()
        self.clock = clock
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._creds: list[tuple[bytes, str | None, Credential]] = []
        self._tenants: list[str] = []

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
                self._creds, self._tenants, self._stamp = [], [], None
                return
            try:
                reg = read_registry(self.path)
            except DialbackError as err:
                # Keep the last good view: a hand-edit gone wrong should not
                # lock every tenant out. The error is logged for the operator.
                log.error("%s; still using the previous credentials", err)
                self._stamp = stamp
                return
            owners = [(t, c) for t, cs in reg.tenants.items() for c in cs] + [(None, c) for c in reg.provider]
            self._creds = [(_digest_bytes(c.sha256), t, c) for t, c in owners]
            self._tenants = sorted(reg.tenants)
            self._stamp = stamp

    def identify(self, token: str | None) -> Identity | None:
        """Who holds this token and with which scopes; None if unknown, revoked or past its overlap."""
        self._refresh()
        if not token:
            return None
        presented = hashlib.sha256(token.encode("utf-8")).digest()
        found = None
        for digest, tenant, cred in self._creds:
            # No early exit: every credential costs the same.
            if hmac.compare_digest(presented, digest) and found is None:
                found = (tenant, cred)
        if found is None or not found[1].valid_at(self.clock()):
            return None
        tenant, cred = found
        return Identity(tenant, frozenset(cred.scopes), cred.id)

    def tenants(self) -> list[str]:
        self._refresh()
        return list(self._tenants)


def _digest_bytes(value: str) -> bytes:
    try:
        b = bytes.fromhex(value)
    except ValueError:
        return b""
    return b if len(b) == 32 else b""
