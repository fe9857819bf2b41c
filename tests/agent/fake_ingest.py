"""A tiny in-process ingest following docs/data-path.md (agent → ingest), for tests.

It keeps what real ingest would put in Kafka as a list of decoded records, so
tests can replay exactly what was acknowledged.
"""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from shared.bodies import (BATCHES_CONTENT_TYPE, SEALED_BATCHES_CONTENT_TYPE, BodyError, max_body_bytes,
                           split_body)
from shared.crypto.transport import OVERHEAD, SEALED_CONTENT_TYPE, TransportError, open_sealed
from shared.frames import FrameError, MAX_BATCH_BYTES, Record, decode_batch


class FakeIngest:
    def __init__(self, token: str = "secret-token", sealing: tuple[str, bytes] | None = None, multi: bool = True):
        """``sealing``: (tenant, transport key); when given, only sealed batches are taken (like real ingest).

        ``multi=False`` answers 415 to multi-batch bodies, like an ingest older than shared.bodies.
        """
        self.token = token
        self.multi = multi
        self.bodies: list[str] = []  # content type of every accepted body
        self.sealing = sealing
        self.sealed_batches = 0
        self.groups: dict[str, dict] = {}
        self.records: dict[str, list[Record]] = {}
        self.acked: dict[str, int] = {}
        self.fail_status: int | None = None  # answer every batch with this (e.g. 503)
        self.retry_after: str | None = None  # ... with this Retry-After header
        self.failed_at: list[float] = []  # monotonic time of every batch answered with fail_status
        self.batches = 0
        self.lock = threading.Lock()
        self.app = self._build()

    def _auth(self, request: Request) -> None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            raise HTTPException(401, "unknown token")

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.put("/v1/groups/{group}")
        async def register(group: str, request: Request):
            self._auth(request)
            body = await request.json()
            with self.lock:
                self.groups[group] = {v["volume"]: v["size"] for v in body["volumes"]}
                self.records.setdefault(group, [])
                self.acked.setdefault(group, 0)
            return {"group": group, "volumes": body["volumes"]}

        @app.post("/v1/groups/{group}/batches")
        async def batches(group: str, request: Request):
            self._auth(request)
            if group not in self.groups:
                raise HTTPException(404, "unknown group")
            if self.fail_status:
                self.failed_at.append(time.monotonic())
                headers = {"Retry-After": self.retry_after} if self.retry_after else None
                raise HTTPException(self.fail_status, "injected failure", headers=headers)
            body = await request.body()
            ctype = request.headers.get("content-type")
            sealed = ctype in (SEALED_CONTENT_TYPE, SEALED_BATCHES_CONTENT_TYPE)
            multi = ctype in (BATCHES_CONTENT_TYPE, SEALED_BATCHES_CONTENT_TYPE)
            if multi and not self.multi:
                raise HTTPException(415, "one batch per request (an ingest older than multi-batch bodies)")
            limit = max_body_bytes(sealed) if multi else MAX_BATCH_BYTES + (OVERHEAD if sealed else 0)
            if len(body) > limit:
                raise HTTPException(413, "batch too large")
            if self.sealing is not None:
                if not sealed:
                    raise HTTPException(400, "plaintext refused")
                try:
                    body, _, _ = open_sealed(self.sealing[1], self.sealing[0], group, body)
                except TransportError as err:
                    raise HTTPException(400, str(err)) from err
                self.sealed_batches += 1
            try:
                recs = [r for b in (split_body(body) if multi else [body]) for r in decode_batch(b)]
            except (FrameError, BodyError) as err:
                raise HTTPException(400, str(err)) from err
            self.bodies.append(ctype)
            with self.lock:
                acked = self.acked[group]
                for i, r in enumerate(recs):
                    if r.volume not in self.groups[group]:
                        raise HTTPException(422, f"volume {r.volume} not in group")
                    if i and r.sequence != recs[i - 1].sequence + 1:
                        raise HTTPException(400, "batch not gap-free")
                if recs and recs[0].sequence > acked + 1:
                    return JSONResponse({"detail": "gap", "expected": acked + 1}, status_code=409)
                new = [Record(r.volume, r.sequence, r.timestamp_ns, r.offset, r.length, r.kind, r.codec,
                              bytes(r.payload)) for r in recs if r.sequence > acked]
                self.records[group].extend(new)
                if new:
                    self.acked[group] = new[-1].sequence
                self.batches += 1
                return {"acked_through": self.acked[group]}

        return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class IngestServer:
    """FakeIngest served by uvicorn on 127.0.0.1:port in a thread."""

    def __init__(self, ingest: FakeIngest, port: int | None = None):
        self.ingest = ingest
        self.port = port or free_port()
        self.server = uvicorn.Server(uvicorn.Config(ingest.app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="off"))
        self.server.capture_signals = _no_signals
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "IngestServer":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("fake ingest did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _no_signals():
    import contextlib
    return contextlib.nullcontext()
