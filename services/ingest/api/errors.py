"""Turning ingest errors into HTTP answers (used by routes only)."""

from __future__ import annotations

from fastapi import HTTPException, Request, status
from fastapi.responses import JSONResponse

from services.ingest import errors as e

STATUS: dict[type[e.IngestError], int] = {
    e.InvalidRegistration: status.HTTP_422_UNPROCESSABLE_CONTENT,
    e.GroupConflict: status.HTTP_409_CONFLICT,
    e.UnknownGroup: status.HTTP_404_NOT_FOUND,
    e.BatchTooLarge: status.HTTP_413_CONTENT_TOO_LARGE,
    e.MalformedBatch: status.HTTP_400_BAD_REQUEST,
    e.BadSequence: status.HTTP_400_BAD_REQUEST,
    e.ForeignVolume: status.HTTP_422_UNPROCESSABLE_CONTENT,
    e.SequenceGap: status.HTTP_409_CONFLICT,
    e.IngestUnavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
    e.Overloaded: status.HTTP_503_SERVICE_UNAVAILABLE,
    e.BadSeal: status.HTTP_400_BAD_REQUEST,
    e.PlaintextRefused: status.HTTP_400_BAD_REQUEST,
    e.TransportMisconfigured: status.HTTP_500_INTERNAL_SERVER_ERROR,
}


class GapHTTPException(HTTPException):
    """409 whose body carries ``expected`` beside ``detail`` (data-path.md)."""

    def __init__(self, detail: str, expected: int) -> None:
        super().__init__(status.HTTP_409_CONFLICT, detail=detail)
        self.expected = expected


async def gap_handler(_request: Request, exc: GapHTTPException) -> JSONResponse:
    return JSONResponse({"detail": exc.detail, "expected": exc.expected}, status_code=exc.status_code)


class IncarnationHTTPException(HTTPException):
    """409 whose body says ``reason`` "incarnation" with the group's epoch and acked_through."""

    def __init__(self, detail: str, epoch: int, acked_through: int) -> None:
        super().__init__(status.HTTP_409_CONFLICT, detail=detail)
        self.epoch, self.acked_through = epoch, acked_through


async def incarnation_handler(_request: Request, exc: IncarnationHTTPException) -> JSONResponse:
    return JSONResponse({"detail": exc.detail, "reason": e.IncarnationConflict.reason, "epoch": exc.epoch,
                         "acked_through": exc.acked_through}, status_code=exc.status_code)


def http_error(err: e.IngestError, retry_after: int) -> HTTPException:
    if isinstance(err, e.SequenceGap):
        return GapHTTPException(str(err), err.expected)
    if isinstance(err, e.IncarnationConflict):
        return IncarnationHTTPException(str(err), err.epoch, err.acked_through)
    code = STATUS.get(type(err), status.HTTP_500_INTERNAL_SERVER_ERROR)
    if code == status.HTTP_503_SERVICE_UNAVAILABLE:
        return HTTPException(code, detail=f"{err}; nothing was acknowledged, retry later",
                             headers={"Retry-After": str(retry_after)})
    return HTTPException(code, detail=str(err))
