"""Cap a local server's memory, page cache included, with a memory cgroup (docs/foundation.md "Kafka's page cache").

Kafka writes every byte it takes through the page cache and never reads most
of it back from there for long. Uncapped, its log keeps taking never-used
pages from a mostly free machine; under a hypervisor that reclaims free guest
memory, each such page costs a fault in the host, several times what writing
into a recycled page costs. In a memory cgroup, the kernel reclaims the
broker's own oldest clean cache pages when the cap is reached and reuses them.

Both cgroup layouts are handled: v1 (a ``memory`` hierarchy) and v2 (a unified
hierarchy whose own cgroup hands ``memory`` down). Capping needs the right to
create a cgroup next to our own (root, or a delegated subtree); without it the
server runs uncapped and :func:`confine` says why.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

PREFIX = "dialback-"


def own_cgroup(proc_cgroup: str, mountinfo: str) -> tuple[Path, str] | None:
    """(directory of our memory cgroup, "v1"|"v2"), from /proc/self/cgroup and /proc/self/mountinfo text."""
    mounts = {}  # version -> (mount point, cgroup path mounted there); v1: the hierarchy carrying "memory"
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or len(rfields) < 3:
            continue
        fstype, opts = rfields[0], rfields[2].split(",")
        if fstype == "cgroup" and "memory" in opts:
            mounts["v1"] = (fields[4], fields[3])
        elif fstype == "cgroup2":
            mounts.setdefault("v2", (fields[4], fields[3]))
    paths = {}
    for line in proc_cgroup.splitlines():
        hid, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if "memory" in controllers.split(","):
            paths["v1"] = path
        elif hid == "0" and controllers == "":
            paths["v2"] = path
    for version in ("v1", "v2"):  # a hybrid host has both: memory lives in v1 there
        if version in mounts and version in paths:
            point, root = mounts[version]
            path = paths[version]
            if root != "/" and (path == root or path.startswith(root + "/")):
                path = path[len(root):]  # a container sees its own part of the hierarchy
            return Path(point) / path.lstrip("/"), version
    return None


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _limit_file(cg: Path, version: str) -> Path:
    return cg / ("memory.limit_in_bytes" if version == "v1" else "memory.max")


def confine(pid: int, name: str, limit_bytes: int) -> tuple[Path | None, str]:
    """Move process ``pid`` (all its threads) into a fresh cgroup capped at ``limit_bytes``.

    Returns (cgroup directory, what was done) or (None, why not). Never raises:
    an uncapped server is slower on some machines, not wrong.
    """
    try:
        found = own_cgroup(_read("/proc/self/cgroup"), _read("/proc/self/mountinfo"))
    except OSError as err:
        return None, f"cannot read this process's cgroups ({err})"
    if found is None:
        return None, "no memory cgroup controller is mounted"
    parent, version = found
    cleanup(parent, name)
    cg = parent / f"{PREFIX}{name}-{pid}"
    try:
        cg.mkdir(exist_ok=True)
        if not _limit_file(cg, version).exists() and version == "v2":
            (parent / "cgroup.subtree_control").write_text("+memory")  # refused while parent holds processes
        _limit_file(cg, version).write_text(str(limit_bytes))
        (cg / "cgroup.procs").write_text(str(pid))
    except OSError as err:
        with contextlib.suppress(OSError):
            cg.rmdir()
        return None, f"cannot create a memory cgroup under {parent} ({err.strerror or err})"
    return cg, f"memory (page cache included) capped at {limit_bytes >> 20} MiB in {cg}"


def release(name: str, pid: int | None = None, wait: float = 5.0) -> None:
    """After a stop: remove the server's cgroups that no process uses any more.

    A stopped server's threads can take a moment to leave its cgroup: the one of
    ``pid`` is waited for, up to ``wait`` seconds.
    """
    with contextlib.suppress(OSError):
        found = own_cgroup(_read("/proc/self/cgroup"), _read("/proc/self/mountinfo"))
        if found is None:
            return
        if pid is not None:
            mine = found[0] / f"{PREFIX}{name}-{pid}"
            deadline = time.monotonic() + wait
            while mine.exists() and (mine / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
                time.sleep(0.1)
        cleanup(found[0], name)


def cleanup(parent: Path, name: str) -> None:
    """Remove this server's cgroups whose processes are gone (rmdir refuses one still in use)."""
    with contextlib.suppress(OSError):
        for d in parent.glob(f"{PREFIX}{name}-*"):
            with contextlib.suppress(OSError):
                os.rmdir(d)


def cgroup_of(pid: int) -> str:
    """The cgroup lines of ``pid`` (/proc/PID/cgroup), for checks and status."""
    return _read(f"/proc/{pid}/cgroup")
