"""Start, watch and stop local server processes (one pid file and log each).

The stack's servers run detached (own session) so that `dialback stack up`
can return; pid files let `down` and `status` find them again.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from deploy.local import memcap
from shared.errors import ConfigError


class StartError(ConfigError):
    pass


_HANDED: set[int] = set()
_HANDED_LOCK = threading.Lock()


def free_port() -> int:
    """A loopback port free right now and never handed out before by this process.

    The kernel may give the same ephemeral port to two bind(0) calls in a row once the
    first socket is closed, so two servers started together could be told the same port.
    """
    with _HANDED_LOCK:
        while True:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            if port not in _HANDED:
                _HANDED.add(port)
                return port


def terminate(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL and reap."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Managed:
    """A server process described by its command line, with a pid file and a log."""

    name: str
    argv: list[str]
    run_dir: Path
    ready: Callable[[], bool]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    memory_limit: int | None = None  # bytes, page cache included (memcap); None: uncapped

    @property
    def memory_note(self) -> Path:
        return self.run_dir / f"{self.name}.memory"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        try:  # a zombie child of ours is not running
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ", 1)[1].startswith("Z"):
                    return None
        except OSError:
            return None
        return pid

    def running(self) -> bool:
        return self.pid() is not None

    def start(self, timeout: float = 90.0) -> int:
        """Start (if not running) and wait until ready; idempotent."""
        pid = self.pid()
        if pid is None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            log = open(self.log_file, "ab")
            proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.cwd, env={**os.environ, **self.env}, start_new_session=True,
            )
            log.close()
            self.pid_file.write_text(str(proc.pid))
            pid = proc.pid
            if self.memory_limit:
                _cg, how = memcap.confine(pid, self.name, self.memory_limit)
                self.memory_note.write_text(how + "\n")  # `stack status` shows it
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() is None:
                raise StartError(f"{self.name} exited during start-up; last log lines ({self.log_file}):\n"
                                 f"{tail(self.log_file)}")
            try:
                if self.ready():
                    return pid
            except Exception:  # noqa: BLE001 - readiness probes fail in many ways while starting
                pass
            time.sleep(0.3)
        raise StartError(f"{self.name} did not become ready within {timeout:.0f}s; see {self.log_file}:\n"
                         f"{tail(self.log_file)}")

    def stop(self, timeout: float = 20.0) -> bool:
        """SIGTERM, then SIGKILL after ``timeout``; True if it was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            _reap(pid)
            time.sleep(0.2)
        if self.pid() is not None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            time.sleep(0.2)
            _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        if self.memory_limit:
            self.memory_note.unlink(missing_ok=True)
            memcap.release(self.name, pid)
        return True

    def kill(self) -> None:
        """SIGKILL at once (failure injection in tests)."""
        pid = self.pid()
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            time.sleep(0.2)
            _reap(pid)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
