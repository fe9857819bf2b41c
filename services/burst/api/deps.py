"""Request dependencies and the mapping of burst errors to HTTP answers (only here and in routes)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from services.burst.errors import (Conflict, InvalidRequest, NotFound, ProvisionFailed, QuotaExceeded)
from services.burst.service import BurstService
from shared.errors import DialbackError, InvalidName
from shared.objectstore import ObjectStoreError, TransientStoreError


def get_service(request: Request) -> BurstService:
    return request.app.state.burst


Service = Annotated[BurstService, Depends(get_service)]

_STATUS = [(NotFound, 404), (Conflict, 409), (QuotaExceeded, 422), (InvalidRequest, 422), (InvalidName, 422),
           (ProvisionFailed, 502)]


def http_error(err: Exception) -> HTTPException:
    for cls, code in _STATUS:
        if isinstance(err, cls):
            return HTTPException(code, detail={"error": type(err).__name__, "message": str(err)})
    name = type(err).__name__
    if isinstance(err, TransientStoreError):
        return HTTPException(503, detail={"error": name, "message": f"object storage is unavailable, retry: {err}"})
    if isinstance(err, ObjectStoreError):
        return HTTPException(500, detail={"error": name, "message": f"the recovery point could not be read from "
                                          f"object storage (check the S3 settings and DIALBACK_MASTER_KEY_FILE): {err}"})
    if isinstance(err, DialbackError):
        return HTTPException(500, detail={"error": name, "message": str(err)})
    return HTTPException(503, detail={"error": name,
                                      "message": f"the cloud could not be reached or answered oddly: {err}"})
