"""Application-consistent bookmarks: hook scripts and fsfreeze around a bookmark.

Runs as asyncio subprocesses on purpose: freezing a filesystem that sits on
our own NBD export makes the kernel flush through this very process, so a
blocking call here would deadlock the tap.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

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


@asynccontextmanager
async def quiesced(mount: str | None, hook: str | None):
    """hook freeze → fsfreeze -f → (body) → fsfreeze -u → hook thaw; the thaw steps always run."""
    hook_started = frozen = False
    try:
        if hook:
            hook_started = True
            await _run(hook, "freeze")
        if mount:
            await _run("fsfreeze", "-f", mount)
            frozen = True
        yield
    finally:
        errors = []
        if frozen:
            try:
                await _run("fsfreeze", "-u", mount)
            except FreezeError as err:
                log.error("could not unfreeze %s: %s", mount, err)
                errors.append(err)
        if hook_started:
            try:
                await _run(hook, "thaw")
            except FreezeError as err:
                log.error("thaw hook failed: %s", err)
                errors.append(err)
        if errors:
            raise errors[0]
