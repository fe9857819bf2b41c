"""The bearer token of the agent's TCP control API: one line in a 0600 file.

Created with a random token the first time TCP is enabled; kept across
restarts (clients such as the burst service's failback read it once).
Rotate by deleting the file and restarting the agent. A file group or
others can read is refused, like the credentials file.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

MIN_LENGTH = 32


def control_token(path: Path) -> str:
    """The token in ``path``, creating the file (0600, 32 random bytes, URL-safe) if it does not exist."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_token(path)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def read_token(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        token = path.read_text().strip()
    except OSError as err:
        raise OSError(err.errno, f"cannot read the control token file {path}: {err.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(f"control token file {path} is accessible by group or others "
                         f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {path}")
    if len(token) < MIN_LENGTH:
        raise ValueError(f"control token file {path} holds a token shorter than {MIN_LENGTH} characters; "
                         "delete it and restart the agent to get a new one")
    return token
