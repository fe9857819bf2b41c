"""Protection groups: register and look up."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from services.ingest.api.deps import CurrentTenant, Service, Settings
from services.ingest.api.errors import http_error
from services.ingest.errors import IngestError
from services.ingest.state import GroupState

router = APIRouter(prefix="/v1/groups", tags=["groups"])


class Registration(BaseModel):
    # Checked by the service (with messages naming the bad volume), not by pydantic.
    volumes: Any = None
    incarnation: Any = None  # the registering spool's (services.ingest.incarnation)
    reprotect: Any = False  # take the group over from another spool: a new epoch


def group_body(gs: GroupState) -> dict:
    body = {"group": gs.group, "volumes": gs.volumes_list(), "acked_through": gs.acked_through}
    if gs.broken is not None:  # retention lacks that sequence and asked for a resend (shared.broken)
        body["broken"] = {"expected": gs.broken}
    if gs.incarnation is not None:  # a group protected by a known spool (services.ingest.incarnation)
        body.update(incarnation=gs.incarnation, epoch=gs.epoch, epoch_first_seq=gs.epoch_first_seq,
                    last_timestamp_ns=gs.last_timestamp_ns)
    return body


@router.put("/{group}")
async def register_group(group: str, reg: Registration, tenant: CurrentTenant, service: Service,
                         settings: Settings) -> dict:
    """Register a group (idempotent: the same volumes and incarnation again answer 200)."""
    try:
        gs, _created = await service.register_group(tenant, group, reg.volumes, reg.incarnation, reg.reprotect)
    except IngestError as err:
        raise http_error(err, settings.retry_after_s) from err
    return group_body(gs)


@router.get("/{group}")
async def get_group(group: str, tenant: CurrentTenant, service: Service, settings: Settings) -> dict:
    try:
        gs = await service.get_group(tenant, group)
    except IngestError as err:
        raise http_error(err, settings.retry_after_s) from err
    return group_body(gs)
