"""Write throughput through the Dialback tap vs nbdkit's file plugin.

Same chain for both: NBD server → nbdfuse → loop device, then
``dd if=<random file in /dev/shm> of=/dev/loopN bs=1M oflag=direct conv=fsync``.
The tap runs as its own process (``python -m agent protect``) with an
unreachable ingest, so the figure is the cost of capture (apply + spool +
FLUSH/FUA durability), not of shipping. Runs alternate; medians are
reported. Needs root.

Modes: ``durable`` (dd ends with fsync → NBD FLUSH; the tap must make the
disk *and* the spool durable, so on one shared disk it writes twice the
bytes), ``buffered`` (no final fsync: protocol and capture CPU cost) and
``durable-spool-tmpfs`` (spool on tmpfs as a stand-in for a separate spool
device).

    sudo .venv/bin/python bench/tap_overhead.py --mib 256 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.nbd.loopchain import loop_device  # noqa: E402

MiB = 1 << 20


def wait_socket(path: Path, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stdout.read().decode(errors='replace')[-2000:]}")
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(path))
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {path}")


@contextmanager
def server(kind: str, disk: Path, work: Path, spool_root: Path | None = None):
    """Both servers on a Unix socket (the tap's default), so the chain is the same."""
    sockets = Path(tempfile.mkdtemp(prefix="dbtap-"))
    sock = sockets / "nbd.sock"
    if kind == "nbdkit":
        argv = ["nbdkit", "-f", "-U", str(sock), "file", str(disk)]
        export = ""
    else:
        spool = (spool_root or work) / "spool"
        shutil.rmtree(spool, ignore_errors=True)
        argv = [sys.executable, "-m", "agent", "protect", "--ingest", "http://127.0.0.1:9", "--token", "bench",
                "--group", "bench", "--volume", f"disk0={disk}", "--spool", str(spool),
                "--nbd-socket", str(sock), "--control-socket", str(sockets / "control.sock"),
                "--spool-limit", str(64 << 30)]
        export = "disk0"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "DIALBACK_LOG_LEVEL": "ERROR"}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        wait_socket(sock, proc)
        if kind != "nbdkit":
            wait_socket(sockets / "control.sock", proc)  # fully started: no start-up work overlaps the measurement
            time.sleep(0.5)
        yield sock, export
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(sockets, ignore_errors=True)


def settle() -> None:
    """Start every run from the same place: no dirty pages from the last one."""
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("1\n")


def one_run(kind: str, disk: Path, src: Path, mib: int, work: Path, fsync: bool,
            spool_root: Path | None = None) -> float:
    with open(disk, "wb") as fh:
        fh.truncate(2 * mib * MiB)
    with server(kind, disk, work, spool_root) as (sock, export), loop_device(sock, None, export, work / kind) as dev:
        settle()
        t0 = time.monotonic()
        argv = ["dd", f"if={src}", f"of={dev}", "bs=1M", f"count={mib}", "oflag=direct"]
        subprocess.run(argv + (["conv=fsync"] if fsync else []), check=True, capture_output=True, timeout=600)
        elapsed = time.monotonic() - t0
    return mib / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mode", choices=["all", "durable", "buffered", "durable-spool-tmpfs"], default="all")
    ap.add_argument("--workdir", type=Path, default=None, help="where disks and spool live (default: a temp dir)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the bench needs nbdfuse, losetup and a loop device")
    work = Path(tempfile.mkdtemp(prefix="dialback-bench-", dir=args.workdir))
    src = Path("/dev/shm") / f"dialback-bench-{os.getpid()}.bin"
    # a tmpfs spool stands in for "spool on its own device", the recommended layout
    shm = Path(tempfile.mkdtemp(prefix="dialback-bench-spool-", dir="/dev/shm"))
    try:
        with open(src, "wb") as fh:
            for _ in range(args.mib):
                fh.write(os.urandom(MiB))
        report = {"bench": "tap_overhead", "mib": args.mib, "runs": args.runs,
                  "chain": "nbd server -> nbdfuse -> loop -> dd if=random bs=1M oflag=direct [conv=fsync]"}
        modes = (("durable", True, None), ("buffered", False, None), ("durable-spool-tmpfs", True, shm))
        for mode, fsync, spool_root in modes:
            if args.mode not in ("all", mode):
                continue
            results: dict[str, list[float]] = {"nbdkit": [], "dialback": []}
            for _ in range(args.runs):
                for kind in ("nbdkit", "dialback"):
                    results[kind].append(one_run(kind, work / f"{kind}.img", src, args.mib, work, fsync, spool_root))
            nbdkit, tap = statistics.median(results["nbdkit"]), statistics.median(results["dialback"])
            report[mode] = {"nbdkit_file_mb_s": round(nbdkit, 1), "dialback_tap_mb_s": round(tap, 1),
                            "ratio": round(tap / nbdkit, 3),
                            "samples": {k: [round(v, 1) for v in vs] for k, vs in results.items()}}
        print(json.dumps(report, indent=2))
    finally:
        src.unlink(missing_ok=True)
        shutil.rmtree(shm, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
