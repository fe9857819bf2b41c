"""Write batches from agents."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status

from services.ingest.api.body import read_limited
from services.ingest.api.deps import LicensedTenant, Metrics, Service, Settings
from services.ingest.api.errors import http_error
from services.ingest.errors import IngestError
from services.ingest.metrics import ACCEPTED, DUPLICATE, REJECTED
from shared.bodies import BATCHES_CONTENT_TYPE, SEALED_BATCHES_CONTENT_TYPE, max_body_bytes
from shared.crypto.transport import OVERHEAD, SEALED_CONTENT_TYPE
from shared.frames import MAX_BATCH_BYTES
from shared.incarnation import HEADER as INCARNATION_HEADER

router = APIRouter(prefix="/v1/groups", tags=["batches"])

CONTENT_TYPES = ("application/x-dialback-batch", "application/octet-stream", SEALED_CONTENT_TYPE,
                 BATCHES_CONTENT_TYPE, SEALED_BATCHES_CONTENT_TYPE)


@router.post("/{group}/batches")
async def post_batch(group: str, request: Request, tenant: LicensedTenant, service: Service,
                     settings: Settings, metrics: Metrics) -> dict:
    """Answer 200 {"acked_through": N} only once Kafka holds every record up to N."""
    ctype = request.headers.get("content-type", CONTENT_TYPES[0]).split(";")[0].strip()
    if ctype not in CONTENT_TYPES:
        metrics.batch(REJECTED, "content_type", 0, 0)
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                            detail=f"send the batch as one of {', '.join(CONTENT_TYPES)}, not {ctype}")
    sealed = ctype in (SEALED_CONTENT_TYPE, SEALED_BATCHES_CONTENT_TYPE)
    multi = ctype in (BATCHES_CONTENT_TYPE, SEALED_BATCHES_CONTENT_TYPE)
    limit = max_body_bytes(sealed) if multi else MAX_BATCH_BYTES + (OVERHEAD if sealed else 0)
    nbytes = 0
    try:
        # Group first: a 404 must not depend on what the body looks like.
        await service.get_group(tenant, group)
        # the body's bytes count against the tenant's and ingest's in-flight caps until the answer
        with service.arriving(tenant, group), request.app.state.inflight.hold(tenant) as hold:
            body = await read_limited(request, limit, hold)
            nbytes = len(body)
            acked, plan = await service.accept_batch(tenant, group, body, sealed, multi,
                                                     request.headers.get(INCARNATION_HEADER))
    except IngestError as err:
        metrics.batch(REJECTED, err.reason, nbytes, err.records)
        raise http_error(err, settings.retry_after_s) from err
    if plan.duplicate:
        metrics.batch(DUPLICATE, "already_acked", nbytes, 0)
    else:
        metrics.batch(ACCEPTED, "ok", plan.data_bytes, plan.records)
    return {"acked_through": acked}
