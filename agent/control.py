"""Local control HTTP API: status, metrics, bookmarks.

Served on a Unix socket (mode 0600: only the agent's user, and root) and,
only when a port is set, on TCP 127.0.0.1 with a bearer token. Both check
the Host header (a browser page on this host reaching 127.0.0.1 by DNS
rebinding sends its own site's name). A bookmark request names a group and
a name, nothing else: the hook and the mounts to freeze are the agent's
settings, so no request can make the agent run a program or freeze a
filesystem of its choosing.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, model_validator
from starlette.middleware.trustedhost import TrustedHostMiddleware

from agent.errors import BookmarkError, FreezeError
from agent.freeze import quiesced

if TYPE_CHECKING:
    from agent.runtime import Agent

LOCAL_HOSTS = ["localhost", "127.0.0.1"]


class BookmarkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    group: str
    name: str
    quiesce: bool = True  # false: skip the configured hook and freezes (a crash-consistent bookmark)

    @model_validator(mode="before")
    @classmethod
    def _no_programs(cls, data):
        if isinstance(data, dict) and ({"hook", "fsfreeze"} & data.keys()):
            raise ValueError("a request cannot name a hook or a mount to freeze; they are the agent's settings "
                             "(--bookmark-hook / DIALBACK_AGENT_BOOKMARK_HOOK, --bookmark-fsfreeze / "
                             "DIALBACK_AGENT_BOOKMARK_FSFREEZE)")
        return data


def create_app(agent: "Agent", token: str | None = None, hosts: list[str] | None = None) -> FastAPI:
    """``token``: required as ``Authorization: Bearer`` on every request (the TCP listener); None: none
    (the Unix socket, where the file mode decides who connects). ``hosts``: accepted Host names."""
    app = FastAPI(title="Dialback agent", docs_url=None, redoc_url=None, openapi_url=None)
    if token is not None:
        expected = f"Bearer {token}".encode()

        @app.middleware("http")
        async def bearer(request: Request, call_next):
            got = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(got, expected):
                return JSONResponse({"detail": "send 'Authorization: Bearer <token>' with the token from the "
                                               "agent's control token file (DIALBACK_AGENT_CONTROL_TOKEN_FILE)"},
                                    status_code=401, headers={"WWW-Authenticate": "Bearer"})
            return await call_next(request)

    app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts or LOCAL_HOSTS)  # outermost: checked first

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/status")
    async def status() -> dict:
        return agent.status()

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(agent.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/bookmarks")
    async def bookmark(req: BookmarkRequest) -> dict:
        group = agent.groups.get(req.group)
        if group is None:
            raise HTTPException(404, f"this agent does not protect a group named {req.group!r}; "
                                     f"it protects {sorted(agent.groups)}")
        s = agent.settings
        mounts, hook = (s.freeze_mounts, s.bookmark_hook) if req.quiesce else ([], None)
        try:
            group.check_bookmark_name(req.name)
            async with quiesced(mounts, hook):
                seq, ts = group.bookmark(req.name)
        except BookmarkError as err:
            raise HTTPException(409, str(err)) from err
        except FreezeError as err:
            raise HTTPException(500, f"bookmark not taken: {err}") from err
        return {"group": req.group, "name": req.name, "sequence": seq, "timestamp_ns": ts}

    return app
