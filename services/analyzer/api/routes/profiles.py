"""Profiles kept by the analyzer: upload (verified before it is stored) and list."""

from __future__ import annotations

import os

from fastapi import APIRouter, HTTPException, Request

from agent.profile.format import ProfileError
from agent.profile.reader import parse_profile
from services.analyzer.api.deps import Authorized, Metrics, Settings, profile_path

router = APIRouter(prefix="/v1/profiles", tags=["profiles"], dependencies=[Authorized])


@router.get("")
def list_profiles(settings: Settings) -> dict:
    d = settings.analyzer_profile_dir
    files = sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith(".")) if d.is_dir() else []
    return {"profiles": [{"name": p.name, "bytes": p.stat().st_size} for p in files]}


@router.put("/{name}")
async def upload_profile(name: str, request: Request, settings: Settings, metrics: Metrics) -> dict:
    """Store a profile (raw file bytes as the body); refused, and nothing stored, if it does not verify."""
    path = profile_path(settings, name)
    limit = settings.analyzer_max_upload_mb << 20
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"profile is over {settings.analyzer_max_upload_mb} MiB; "
                                     "raise DIALBACK_ANALYZER_MAX_UPLOAD_MB or split the recording")
    try:
        prof = parse_profile(bytes(body), name)
    except ProfileError as err:
        raise HTTPException(400, str(err)) from err
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{name}.upload")
    tmp.write_bytes(body)
    os.replace(tmp, path)  # readers never see a half-written profile
    metrics.uploads.inc(len(body))
    return {"name": name, "server": prof.header.server, "volume": prof.header.volume,
            "records": len(prof.records), "warnings": prof.warnings}
