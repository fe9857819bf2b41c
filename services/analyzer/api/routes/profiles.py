"""A tenant's profiles: upload (streamed to disk, verified before it is stored), list, delete."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response

from agent.profile.format import ProfileError
from services.analyzer.api.deps import Authorized, Metrics, Owner, Store
from services.analyzer.profiles import BadProfileName, ProfileTooLarge, TooManyProfiles

router = APIRouter(prefix="/v1/profiles", tags=["profiles"], dependencies=[Authorized])


@router.get("")
def list_profiles(tenant: Owner, store: Store) -> dict:
    return {"profiles": store.listing(tenant)}


@router.put("/{name}")
async def upload_profile(name: str, request: Request, tenant: Owner, store: Store, metrics: Metrics) -> dict:
    """Store a profile (raw file bytes as the body); refused, and nothing stored, if it does not verify."""
    declared = request.headers.get("content-length")
    try:
        prof, size = await store.upload(tenant, name, request.stream(),
                                        int(declared) if declared and declared.isdigit() else None)
    except BadProfileName as err:
        raise HTTPException(422, str(err)) from err
    except ProfileTooLarge as err:
        raise HTTPException(413, str(err)) from err
    except TooManyProfiles as err:
        raise HTTPException(409, str(err)) from err
    except ProfileError as err:
        raise HTTPException(400, str(err)) from err
    metrics.uploads.inc(size)
    return {"name": name, "server": prof.header.server, "volume": prof.header.volume,
            "records": len(prof.records), "warnings": prof.warnings}


@router.delete("/{name}", status_code=204)
def delete_profile(name: str, tenant: Owner, store: Store) -> Response:
    try:
        found = store.delete(tenant, name)
    except BadProfileName as err:
        raise HTTPException(422, str(err)) from err
    if not found:
        raise HTTPException(404, f"no such profile: {name}")
    return Response(status_code=204)
