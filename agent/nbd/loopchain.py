"""nbdfuse + loop device: expose an NBD export as a local block device (root).

Used by the root tests and the benches to put a real filesystem on the tap::

    with loop_device(agent.nbd_socket, None, "disk0", workdir) as dev:   # or ("127.0.0.1", port, ...)
        subprocess.run(["mkfs.ext4", "-q", dev], check=True)

Everything is undone in reverse order even when the body fails.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path


def _run(*argv: str, timeout: float = 60) -> str:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if res.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res.stdout.strip()


@contextlib.contextmanager
def fuse_file(host: str | Path, port: int | None, export: str, workdir: Path, connections: int | None = None):
    """Mount the export with nbdfuse; yields the path of the virtual file. ``port=None``: ``host`` is a
    Unix socket path (the agent's default)."""
    mnt = Path(workdir) / f"fuse-{export}"
    mnt.mkdir(parents=True, exist_ok=True)
    pidfile = Path(workdir) / f"nbdfuse-{export}.pid"
    pidfile.unlink(missing_ok=True)
    argv = ["nbdfuse", "-P", str(pidfile)]
    if connections:
        argv += ["-C", str(connections)]
    if port is None:
        argv += [str(mnt / "disk"), f"nbd+unix:///{export}?socket={host}"]
    else:
        argv += [str(mnt / "disk"), "--tcp", str(host), str(port)] if not export else \
            [str(mnt / "disk"), f"nbd://{host}:{port}/{export}"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not pidfile.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"nbdfuse exited: {proc.stderr.read().decode(errors='replace')}")
            if time.monotonic() > deadline:
                raise TimeoutError("nbdfuse did not become ready in 20s")
            time.sleep(0.05)
        yield mnt / "disk"
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True, timeout=30)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextlib.contextmanager
def loop_device(host: str | Path, port: int | None, export: str, workdir: Path, direct_io: bool = False):
    """nbdfuse file attached to a loop device; yields /dev/loopN."""
    with fuse_file(host, port, export, workdir) as path:
        argv = ["losetup", "--find", "--show"] + (["--direct-io=on"] if direct_io else []) + [str(path)]
        dev = _run(*argv)
        try:
            yield dev
        finally:
            for _ in range(50):  # the kernel may hold the device for a moment after umount
                if subprocess.run(["losetup", "-d", dev], capture_output=True).returncode == 0:
                    break
                time.sleep(0.1)


@contextlib.contextmanager
def mounted(dev: str, mountpoint: Path, fstype: str = "ext4"):
    mountpoint = Path(mountpoint)
    mountpoint.mkdir(parents=True, exist_ok=True)
    _run("mount", "-t", fstype, dev, str(mountpoint))
    try:
        yield mountpoint
    finally:
        for _ in range(50):
            if subprocess.run(["umount", str(mountpoint)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
