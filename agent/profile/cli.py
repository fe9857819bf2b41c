"""`dialback agent profile`: run the profile-only tap in the foreground.

The lead/agent engineer wires it with ``register_profile(agent_app)`` next to
``dialback agent status``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

err = Console(stderr=True)


def profile(
    volume: list[str] = typer.Option(..., help="NAME=PATH of a disk file or block device; repeat for more"),
    out: Path = typer.Option(..., help="directory for the profiles (<server>.<volume>.dbprof, appended to)"),
    server: str = typer.Option(socket.gethostname(), help="server name recorded in the profile"),
    nbd_socket: Optional[Path] = typer.Option(None, help="NBD Unix socket, 0600 (default OUT/SERVER.nbd.sock)"),
    nbd_port: Optional[int] = typer.Option(None, help="serve NBD on this TCP port of 127.0.0.1 instead "
                                                      "(needs --nbd-tls-dir)"),
    nbd_tls_dir: Optional[Path] = typer.Option(None, help="server certificates (`dialback agent nbd-certs`)"),
    sample_every: int = typer.Option(1 << 20, help="sample one write for compressibility every this many bytes"),
    locality_window: int = typer.Option(3600, help="overwrite locality window, seconds"),
) -> None:
    """Serve volumes over NBD and record a workload profile; ships nothing. Stop with Ctrl-C."""
    from agent.profile.format import ProfileError
    from agent.profile.tap import ProfileTap

    logging.basicConfig(level=os.environ.get("DIALBACK_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    vols = {}
    for spec in volume:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            err.print(f"[red]error:[/] --volume {spec!r} must be NAME=PATH, e.g. disk0=/dev/vdb")
            raise typer.Exit(2)
        vols[name] = Path(path)
    try:
        from shared.nbd_tls import server_context

        tls = server_context(nbd_tls_dir) if nbd_tls_dir else None
        tap = ProfileTap(vols, out, server, port=nbd_port, unix_path=nbd_socket, tls=tls,
                         sample_every_bytes=sample_every, locality_window_s=locality_window)
        port = tap.start()
    except (OSError, ValueError, ProfileError) as e:
        err.print(f"[red]error:[/] {e}")
        raise typer.Exit(1) from e
    where = tap.unix_path if tap.unix_path else f"127.0.0.1:{port} (TLS)"
    err.print(f"profiling {', '.join(vols)} on NBD {where}; profiles in {out}; Ctrl-C to stop")
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    tap.stop()
    err.print("profiles flushed and closed")


def register_profile(agent_app: typer.Typer, name: str = "profile") -> None:
    agent_app.command(name)(profile)


__all__ = ["register_profile", "profile"]
