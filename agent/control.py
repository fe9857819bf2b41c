"""Local control HTTP API (127.0.0.1 only): status, metrics, bookmarks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI, HTTPException
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from agent.errors import BookmarkError, FreezeError
from agent.freeze import quiesced

if TYPE_CHECKING:
    from agent.runtime import Agent


class BookmarkRequest(BaseModel):
    group: str
    name: str
    fsfreeze: str | None = None
    hook: str | None = None


def create_app(agent: "Agent") -> FastAPI:
    app = FastAPI(title="Dialback agent", docs_url=None, redoc_url=None)

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
        try:
            group.check_bookmark_name(req.name)
            async with quiesced(req.fsfreeze, req.hook):
                seq, ts = group.bookmark(req.name)
        except BookmarkError as err:
            raise HTTPException(409, str(err)) from err
        except FreezeError as err:
            raise HTTPException(500, f"bookmark not taken: {err}") from err
        return {"group": req.group, "name": req.name, "sequence": seq, "timestamp_ns": ts}

    return app
