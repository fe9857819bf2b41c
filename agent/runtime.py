"""The agent process: NBD tap, sync, shipper and control API on one event loop.

In-process use (tests, benches)::

    handle = AgentThread(AgentSettings(...)).start()   # returns once serving
    ... handle.agent.nbd_port, handle.agent.control_port ...
    handle.stop()

Foreground use: :func:`run_agent` (what ``dialback protect`` calls).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading

import httpx
import uvicorn

from agent.config import AgentSettings
from agent.control import LOCAL_HOSTS, create_app
from agent.control_token import control_token
from agent.disk import Disk
from agent.errors import FreezeError
from agent.freeze import check_hook
from agent.group import Group, VolumeExport
from agent.metrics import make_registry
from agent.nbd.server import NbdServer
from agent.shipper import Shipper
from agent.spool import Spool
from agent.sync import Syncer
from shared.allocator import tune_allocator
from shared.nbd_tls import server_context
from shared.unixsock import listen_unix, remove

log = logging.getLogger(__name__)


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the agent decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


class Agent:
    def __init__(self, settings: AgentSettings, transport: httpx.AsyncBaseTransport | None = None):
        self.settings = settings
        self.transport = transport
        self.groups: dict[str, Group] = {}
        self.shippers: dict[str, Shipper] = {}
        self.syncers: dict[str, Syncer] = {}
        self.registry = make_registry(self)
        self.nbd: NbdServer | None = None  # the Unix socket
        self.nbd_tcp: NbdServer | None = None  # TCP + mutual TLS, when nbd_port is set
        self.nbd_port: int | None = None
        self.control_port: int | None = None
        self.nbd_socket = settings.local_path(settings.nbd_socket, "nbd.sock")
        self.control_socket = settings.local_path(settings.control_socket, "control.sock")
        self.control_token_file = settings.local_path(settings.control_token_file, "control.token")

    def open(self) -> None:
        s = self.settings
        token, sealing = s.shipping()  # a bad credentials file stops the agent before it touches a disk
        if s.bookmark_hook is not None:
            try:
                check_hook(s.bookmark_hook)
            except FreezeError as err:
                raise ValueError(str(err)) from None
        if s.nbd_tls_dir is not None:
            server_context(s.nbd_tls_dir)  # a bad TLS directory stops the agent here, with the reason
        volumes = s.volume_map
        if not volumes:
            raise ValueError("no volumes to protect: pass --volume NAME=PATH (or set DIALBACK_AGENT_VOLUMES)")
        disks = {name: Disk(name, path) for name, path in volumes.items()}
        spool = Spool(s.spool_dir / s.group, segment_bytes=s.segment_bytes, spare_segments=s.spool_spare_segments,
                      tail_bytes=s.spool_tail_bytes)
        group = Group(s.group, disks, spool, s.spool_limit_bytes, s.low_water, s.writeback_bytes)
        if group.state.initial_sync_complete or s.baseline:
            # With a known baseline the syncer finds nothing to copy and only records the
            # initial-sync bookmark: the journal then holds just the writes made from now on.
            group.sync_progress = {v: d.size for v, d in disks.items()}
        if s.reprotect:
            # The sync waits for the registration, which may renumber the group (a new epoch).
            group.registered.clear()
        self.groups[s.group] = group
        self.shippers[s.group] = Shipper(group, s.ingest, token, s.bandwidth, transport=self.transport,
                                         backoff_cap=s.backoff_cap_seconds, sealing=sealing,
                                         batches_per_post=s.batches_per_post,
                                         bodies_in_flight=s.bodies_in_flight, reprotect=s.reprotect,
                                         tls=s.ingest_tls())
        self.syncers[s.group] = Syncer(group, s.pace)

    def _servers(self) -> list[NbdServer]:
        """The NBD listeners: the Unix socket, and TCP with mutual TLS when a port is set."""
        s = self.settings
        exports = {v: VolumeExport(g, v) for g in self.groups.values() for v in g.disks}
        servers = [NbdServer(exports, unix_path=self.nbd_socket, setting="--nbd-socket")]
        if s.nbd_port is not None:
            servers.append(NbdServer(exports, s.nbd_host, s.nbd_port, tls=server_context(s.nbd_tls_dir)))
        return servers

    async def _control(self, sock: socket.socket, token: str | None) -> tuple[_Uvicorn, asyncio.Task]:
        s = self.settings
        hosts = sorted({*LOCAL_HOSTS, s.control_host})
        server = _Uvicorn(uvicorn.Config(create_app(self, token, hosts), log_level="warning", lifespan="off"))
        serve = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if serve.done():
                serve.result()  # raises why the control API could not start
                raise RuntimeError("control API stopped during startup")
            await asyncio.sleep(0.01)
        return server, serve

    async def run(self, stop: asyncio.Event, ready: threading.Event | None = None) -> None:
        s = self.settings
        self.open()
        nbd = self._servers()
        self.nbd = nbd[0]
        self.nbd_tcp = nbd[1] if len(nbd) > 1 else None
        servers: list[_Uvicorn] = []
        tasks = []
        ctl_unix = None
        try:
            for srv in nbd:
                await srv.start()
            self.nbd_port = self.nbd_tcp.port if self.nbd_tcp else None
            ctl_unix = listen_unix(self.control_socket, "control API", "--control-socket")
            listeners = [(ctl_unix, None)]
            if s.control_port is not None:
                try:
                    tcp = socket.create_server((s.control_host, s.control_port))
                except OSError as err:
                    raise OSError(err.errno, f"cannot listen on {s.control_host}:{s.control_port} for the control "
                                             f"API ({err.strerror}); pick another --control-port") from err
                self.control_port = tcp.getsockname()[1]
                listeners.append((tcp, control_token(self.control_token_file)))
            for sock, token in listeners:
                server, serve = await self._control(sock, token)
                servers.append(server)
                tasks.append(serve)
            tasks += [asyncio.create_task(sh.run(stop)) for sh in self.shippers.values()]
            for syncer in self.syncers.values():
                syncer.start()
            log.info("agent serving: NBD %s, control %s", ", ".join(n.where for n in nbd),
                     ", ".join([str(self.control_socket)] + ([f"http://{s.control_host}:{self.control_port}"]
                                                              if self.control_port else [])))
            if ready is not None:
                ready.set()
            await stop.wait()
        finally:
            for server in servers:
                server.should_exit = True
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            remove(ctl_unix, self.control_socket if ctl_unix is not None else None)
            for syncer in self.syncers.values():
                await asyncio.to_thread(syncer.close)
            for srv in nbd:
                await srv.close()
            for group in self.groups.values():
                group.flush()
                group.close()

    def status(self) -> dict:
        groups = {}
        for name, g in self.groups.items():
            records, pending = g.spool.pending()
            total = sum(d.size for d in g.disks.values()) or 1
            shipper = self.shippers.get(name)
            groups[name] = {
                "volumes": [{"volume": v, "path": str(d.path), "size": d.size,
                             "synced_bytes": g.sync_progress.get(v, 0), "dirty_chunks": len(g.dirty[v])}
                            for v, d in sorted(g.disks.items())],
                "registered": g.registered.is_set(),
                "acked_through": g.state.acked_through,
                "last_sequence": g.spool.last_seq,
                "rpo_seconds": round(g.rpo_seconds(), 3),
                "spool_records": records,
                "spool_bytes": pending,
                "spool_disk_bytes": g.spool.disk_bytes(),
                "initial_sync_complete": g.state.initial_sync_complete,
                "sync_progress": 1.0 if g.state.initial_sync_complete else round(sum(g.sync_progress.values()) / total, 4),
                "overflow": g.overflow,
                "resync_pending": g.state.needs_resync,
                "shipped_bytes": shipper.shipped_bytes if shipper else 0,
                "ingest_connected": shipper.connected if shipper else False,
                "alarms": dict(g.alarms),
            }
        return {"groups": groups,
                "nbd": {"socket": str(self.nbd_socket), "host": self.settings.nbd_host, "port": self.nbd_port,
                        "tls": self.nbd_tcp is not None,
                        "exports": sorted(v for g in self.groups.values() for v in g.disks)},
                "control_socket": str(self.control_socket), "control_port": self.control_port}


def run_agent(settings: AgentSettings) -> None:
    """Run in the foreground until SIGINT/SIGTERM."""
    tune_allocator()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await Agent(settings).run(stop)

    asyncio.run(main())


class AgentThread:
    """An agent on a background thread with its own event loop."""

    def __init__(self, settings: AgentSettings, transport: httpx.AsyncBaseTransport | None = None):
        self.agent = Agent(settings, transport)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="dialback-agent", daemon=True)

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await self.agent.run(self._stop, self._ready)

        try:
            asyncio.run(main())
        except BaseException as err:  # surfaced by start()/stop()
            self._error = err
            self._ready.set()

    def start(self, timeout: float = 30.0) -> "AgentThread":
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("agent did not start in time")
        if self._error:
            raise self._error
        return self

    def stop(self, timeout: float = 30.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        if self._error:
            raise self._error

    @property
    def group(self) -> Group:
        return next(iter(self.agent.groups.values()))

    def __enter__(self) -> "AgentThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
