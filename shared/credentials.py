"""Agent credentials file: what `dialback tenant create` hands to an agent, once.

``{"version": 1, "tenant": "<t>", "token": "<bearer token>", "transport_key": "<base64 32 B>" | null}``,
written 0600. Readers refuse a file that group or others can read. The
repr of :class:`AgentCredentials` hides the token and the key.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from shared.crypto.transport import TransportError, decode_key
from shared.errors import DialbackError


class CredentialsError(DialbackError, ValueError):
    pass


@dataclass(frozen=True)
class AgentCredentials:
    tenant: str
    token: str = field(repr=False)
    transport_key: bytes | None = field(default=None, repr=False)


def _doc(creds: AgentCredentials) -> dict:
    return {"version": 1, "tenant": creds.tenant, "token": creds.token,
            "transport_key": base64.b64encode(creds.transport_key).decode() if creds.transport_key else None}


def write_credentials(path: str | Path, creds: AgentCredentials) -> None:
    """Create ``path`` (0600); refuses to overwrite an existing file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    doc = _doc(creds)
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CredentialsError(f"credentials file {p} already exists; choose another path with --credentials") from None
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)
        f.write("\n")
    os.chmod(p, 0o600)


def replace_credentials(path: str | Path, creds: AgentCredentials) -> None:
    """Rewrite an existing credentials file atomically (0600), e.g. with a rotated token."""
    import tempfile

    p = Path(path)
    doc = _doc(creds)
    fd, tmp = tempfile.mkstemp(prefix=p.name + ".", dir=p.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f)
            f.write("\n")
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_credentials(path: str | Path) -> AgentCredentials:
    p = Path(path)
    try:
        mode = p.stat().st_mode
        raw = p.read_text()
    except OSError as err:
        raise CredentialsError(f"cannot read credentials file {p}: {err.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialsError(f"credentials file {p} is accessible by group or others "
                               f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {p}")
    try:
        doc = json.loads(raw)
        tenant, token, key = str(doc["tenant"]), str(doc["token"]), doc.get("transport_key")
    except (ValueError, KeyError, TypeError) as err:
        raise CredentialsError(f"credentials file {p} is not valid ({type(err).__name__}); "
                               "expected the file written by `dialback tenant create`") from None
    try:
        return AgentCredentials(tenant, token, decode_key(key) if key else None)
    except TransportError as err:
        raise CredentialsError(f"credentials file {p}: {err}") from None
