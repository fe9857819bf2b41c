"""Application-consistent bookmarks: hook scripts and fsfreeze around a bookmark.

Runs as asyncio subprocesses on purpose: freezing a filesystem that sits on
our own NBD export makes the kernel flush through this very process, so a
blocking call here would deadlock the tap.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from contextlib import asynccontextmanager
from pathlib import Path

from agent.errors import FreezeError

log = logging.getLogger(__name__)
TIMEOUT = 60.0


async def _run(*argv: str) -> None:
    try:
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT)
    except OSError as err:
        raise FreezeError(f"cannot run {argv[0]}: {err}") from err
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    except asyncio.TimeoutError as err:
        proc.kill()
        await proc.wait()
        raise FreezeError(f"{' '.join(argv)} did not finish within {TIMEOUT:.0f}s") from err
    if proc.returncode:
        raise FreezeError(f"{' '.join(argv)} failed with exit code {proc.returncode}: "
                          f"{out.decode(errors='replace').strip()[:500]}")


def check_hook(path: Path) -> Path:
    """The configured bookmark hook, refused unless only its owner (root or this user) can change it.

    The agent often runs as root: a hook that another user can rewrite would run their code as root.
    """
    try:
        st = path.stat()
    except OSError as err:
        raise FreezeError(f"bookmark hook {path}: {err.strerror}; fix DIALBACK_AGENT_BOOKMARK_HOOK") from None
    if not stat.S_ISREG(st.st_mode) or not os.access(path, os.X_OK):
        raise FreezeError(f"bookmark hook {path} is not an executable file; run: chmod 700 {path}")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or st.st_uid not in (0, os.geteuid()):
        raise FreezeError(f"bookmark hook {path} can be changed by another user (owner uid {st.st_uid}, "
                          f"mode {stat.S_IMODE(st.st_mode):o}); make it owned by this user and not group/other "
                          f"writable: chmod go-w {path}")
    return path


@asynccontextmanager
async def quiesced(mounts: list[str], hook: Path | None):
    """hook freeze → fsfreeze -f each mount → (body) → fsfreeze -u → hook thaw; the thaw steps always run.

    ``mounts`` and ``hook`` come from the agent's settings only, never from a request.
    """
    hook_started = False
    frozen: list[str] = []
    try:
        if hook:
            hook_started = True
            await _run(str(hook), "freeze")
        for mount in mounts:
            if not os.path.ismount(mount):
                raise FreezeError(f"{mount} (DIALBACK_AGENT_BOOKMARK_FSFREEZE) is not a mounted filesystem")
            await _run("fsfreeze", "-f", mount)
            frozen.append(mount)
        yield
    finally:
        errors = []
        for mount in reversed(frozen):
            try:
                await _run("fsfreeze", "-u", mount)
            except FreezeError as err:
                log.error("could not unfreeze %s: %s", mount, err)
                errors.append(err)
        if hook_started:
            try:
                await _run(str(hook), "thaw")
            except FreezeError as err:
                log.error("thaw hook failed: %s", err)
                errors.append(err)
        if errors:
            raise errors[0]
