"""Steady random writes through the agent's tap, a reference model, and checkpoints.

Operations are those of tests/e2e/nbd_random_ops.py (writes, zeroes, trims of
random offsets and lengths; 7:2:1). The data of operation ``i`` is
``random.Random(f"{seed}-{i}").randbytes(length)``, so it can be rebuilt later
(verify.py replays the log to find which operations a bad image lost).

The model is updated only when the tap acknowledged the operation. When the
connection breaks (agent killed), the operation is re-issued on a new
connection until acknowledged: an unacknowledged write may or may not have
reached the disk, the same bytes written again make the outcome one state.

A checkpoint is (bookmark name, its sequence, SHA-256 of the model, operations
acknowledged before it, time): the writer pauses, flushes, takes a bookmark
through the agent's control API, and hashes the model. Checkpoints are only
taken when the agent answers; a bookmark that fails is not a checkpoint.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from agent.nbd.client import NbdClientError, connect

MAX_LEN = 128 << 10
REISSUE_SECONDS = 180.0  # an agent that is not back by then is a finding, not a wait


@dataclass(frozen=True)
class Op:
    i: int
    kind: str  # write | zero | trim
    offset: int
    length: int


def op_data(seed: str, op: Op) -> bytes:
    return random.Random(f"{seed}-{op.i}").randbytes(op.length)


def apply(model: bytearray, seed: str, op: Op) -> None:
    """The model's effect of an acknowledged ``op`` (zeroes and trims both read back as zeroes)."""
    end = op.offset + op.length
    model[op.offset:end] = op_data(seed, op) if op.kind == "write" else bytes(op.length)


@dataclass(frozen=True)
class Checkpoint:
    name: str
    sequence: int
    sha256: str
    ops: int  # operations acknowledged before it (a prefix of the log)
    t: float  # monotonic


@dataclass(eq=False, repr=False)
class Writer(threading.Thread):
    """Writes ``rate`` operations/s to export ``volume`` on the tap's NBD socket until ``stop`` is set;
    bookmarks through its control socket."""

    nbd_socket: Path
    volume: str
    control_socket: Path
    group: str
    model: bytearray
    seed: str
    rate: float
    checkpoint_seconds: float
    ops: list[Op] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    acked_at: list[float] = field(default_factory=list)  # monotonic tap acknowledgement time per op
    reissued: int = 0
    bookmark_failures: int = 0
    error: BaseException | None = None

    def __post_init__(self) -> None:
        super().__init__(daemon=True, name="soak-writer")
        self.stop = threading.Event()
        self.paused = threading.Event()  # set: no new operations (the final checkpoint is taken)
        self._rng = random.Random(f"{self.seed}-ops")
        self._client = None
        self._http = httpx.Client(transport=httpx.HTTPTransport(uds=str(self.control_socket)),
                                  base_url="http://localhost", timeout=10)

    def _next_op(self) -> Op:
        size, rng = len(self.model), self._rng
        kind = rng.choices(["write", "zero", "trim"], weights=[7, 2, 1])[0]
        length = rng.choice([512, 4096, rng.randint(1, MAX_LEN)])
        return Op(len(self.ops), kind, rng.randrange(0, size - length), length)

    def _issue(self, op: Op) -> None:
        """Until the tap acknowledges ``op``: reconnect and re-issue after any failure (for up to
        ``REISSUE_SECONDS``; the harness stops the writer only between operations)."""
        first, deadline = True, time.monotonic() + REISSUE_SECONDS
        while True:
            try:
                if self._client is None:
                    self._client = connect(self.nbd_socket, None, self.volume, timeout=5)
                if op.kind == "write":
                    self._client.pwrite(op_data(self.seed, op), op.offset)
                elif op.kind == "zero":
                    self._client.zero(op.length, op.offset)
                else:
                    self._client.trim(op.length, op.offset)
                return
            except (OSError, NbdClientError):
                self._drop()
                if first:
                    self.reissued += 1
                    first = False
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def _drop(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except (OSError, NbdClientError):
                pass
            self._client = None

    def checkpoint(self) -> Checkpoint | None:
        """Flush, bookmark, hash the model; None when the agent does not answer."""
        name = f"soak-{len(self.checkpoints)}-{len(self.ops)}"
        try:
            if self._client is not None:
                self._client.flush()
        except (OSError, NbdClientError):
            self._drop()  # the next operation reconnects
        try:
            r = self._http.post("/v1/bookmarks", json={"group": self.group, "name": name})
            r.raise_for_status()
            seq = int(r.json()["sequence"])
        except (httpx.HTTPError, KeyError, ValueError):  # agent down, or refused (sync, overflow, resync)
            self.bookmark_failures += 1
            return None
        cp = Checkpoint(name, seq, hashlib.sha256(self.model).hexdigest(), len(self.ops), time.monotonic())
        self.checkpoints.append(cp)
        return cp

    def run(self) -> None:
        try:
            period = 1.0 / self.rate
            next_due = time.monotonic()
            next_cp = next_due + self.checkpoint_seconds
            while not self.stop.is_set():
                now = time.monotonic()
                if now >= next_cp:
                    self.checkpoint()
                    next_cp = time.monotonic() + self.checkpoint_seconds
                if next_due > now:
                    time.sleep(min(next_due - now, 0.05))
                    continue
                op = self._next_op()
                self._issue(op)
                apply(self.model, self.seed, op)
                self.ops.append(op)
                self.acked_at.append(time.monotonic())
                next_due = max(next_due + period, time.monotonic() - 1.0)  # no catch-up burst after a stall
        except BaseException as err:  # noqa: BLE001 - reported by the harness, not lost in a thread
            if not self.stop.is_set():
                self.error = err

    def finish(self) -> Checkpoint | None:
        """Stop writing and take a last checkpoint (retrying for up to a minute)."""
        self.stop.set()
        self.join(timeout=REISSUE_SECONDS + 10)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            cp = self.checkpoint()
            if cp is not None:
                self._drop()
                return cp
            time.sleep(1)
        return None
