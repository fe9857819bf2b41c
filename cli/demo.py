"""`dialback demo`: the core data path on the running local stack, narrated.

Starts ingest, retention and recovery, protects a disk through the tap, puts a
real ext4 filesystem on it (as root; plain NBD writes otherwise), takes two
bookmarks, rebuilds the disk at the first one and proves it byte-exact.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from agent.nbd.client import connect
from deploy.local.nbdfs import freeze, nbd_filesystem, thaw, tools_missing
from deploy.local.pipeline import Pipeline, sha256_file
from deploy.local.stack import Stack

console = Console()
DISK = 64 << 20


def _write_files(mnt: Path, rng: random.Random, tag: str) -> None:
    for i in range(5):
        (mnt / f"{tag}-{i}.bin").write_bytes(rng.randbytes(rng.randint(64 << 10, 2 << 20)))
    (mnt / "journal.txt").open("a").write(f"{tag} written at {time.ctime()}\n")
    os.sync()


def demo() -> None:
    """Protect a disk, write, bookmark, and recover it byte-exact."""
    stack = Stack.default()
    if not all(r["healthy"] for r in stack.status()):
        console.print("[red]the local stack is not running[/]: start it with `dialback stack up`")
        raise typer.Exit(1)
    work = stack.home / "demo"
    shutil.rmtree(work, ignore_errors=True)
    p = Pipeline.create(stack.env(), work)
    try:
        with console.status("starting ingest, retention and recovery …"):
            p.start()
        console.print(f"services up: ingest {p.ingest_url}, recovery {p.recovery_url}; tenant [bold]{p.tenant}[/]")
        disk = work / "disk0.img"
        with open(disk, "wb") as f:
            f.truncate(DISK)
        agent = p.start_agent("demo", {"disk0": disk})
        with console.status("initial sync of disk0 …"):
            agent.wait_shipped()
        console.print(f"tap serving {agent.nbd_uri}; initial sync shipped")

        rng = random.Random()
        refs: dict[str, str] = {}
        use_fs = os.geteuid() == 0 and not tools_missing()
        if use_fs:
            with nbd_filesystem(agent.nbd_socket, "disk0") as mnt:
                console.print(f"ext4 on the tap mounted at {mnt} (nbdfuse + loop)")
                for tag in ("monday", "tuesday"):
                    _write_files(mnt, rng, tag)
                    freeze(mnt)
                    try:
                        agent.bookmark(tag)
                        refs[tag] = sha256_file(disk)
                    finally:
                        thaw(mnt)
                    console.print(f"bookmark [bold]{tag}[/] taken with the filesystem frozen")
                _write_files(mnt, rng, "wednesday")
        else:
            console.print("[yellow]not root: writing through the NBD client instead of a filesystem[/]")
            with connect(agent.nbd_socket, None, "disk0") as c:
                for tag in ("monday", "tuesday"):
                    for _ in range(200):
                        c.pwrite(rng.randbytes(65536), rng.randrange(0, DISK // 65536) * 65536)
                    c.flush()
                    agent.bookmark(tag)
                    refs[tag] = sha256_file(disk)
        last = agent.wait_shipped()
        with console.status("waiting until every write is recoverable …"):
            pts = p.wait_recoverable("demo", last)
        table = Table("bookmark", "sequence", "time")
        for b in pts["bookmarks"]:
            table.add_row(b["name"], str(b["sequence"]), time.ctime(b["timestamp_ns"] / 1e9))
        console.print(table)
        for tag, digest in refs.items():
            out = work / f"recovered-{tag}.img"
            t0 = time.perf_counter()
            r = p.download("demo", "disk0", out, bookmark=tag)
            if r.status_code != 200:
                console.print(f"[red]recovery at {tag} failed:[/] {r.text}")
                raise typer.Exit(1)
            same = sha256_file(out) == digest
            console.print(f"recovered disk0 at [bold]{tag}[/] in {time.perf_counter() - t0:.2f}s: "
                          + ("[green]byte-exact (sha256 matches the disk at that moment)[/]" if same
                             else "[red]DIFFERENT from the disk at that moment[/]"))
            if not same:
                raise typer.Exit(1)
    finally:
        p.stop_all()


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
