"""What a client asks for: one operation, described completely up front.

Every kind is reduced to boot stages (a DR test, a failover and a burst are one
stage; a recovery plan is several), so one engine runs them all. The spec is
validated whole before any I/O; the operation id comes from the client and
makes retries idempotent.
"""

from __future__ import annotations

import enum
import re

from pydantic import BaseModel, Field, field_validator, model_validator

from shared.tenancy import check_tenant, check_volume

_OP_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,39}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


class Kind(str, enum.Enum):
    DRTEST = "drtest"      # isolated network, time limit, everything removed afterwards
    FAILOVER = "failover"  # production network, stays until cleaned up
    BURST = "burst"        # N servers, scalable, optional time limit
    PLAN = "plan"          # recovery plan: stages with boot order, waits and hooks


class ServerSpec(BaseModel):
    name: str
    group: str
    volume: str
    point: str = "latest"
    flavor: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"server name {v!r}: use 1-40 characters a-z, 0-9, '-'")
        return v

    @field_validator("group", "volume")
    @classmethod
    def _vol(cls, v: str) -> str:
        return check_volume(v)


class Stage(BaseModel):
    """A set of servers booted together; the next stage starts only after this one is ACTIVE."""

    name: str
    servers: list[ServerSpec] = Field(min_length=1)
    wait_seconds: float = Field(0, ge=0, le=3600, description="pause after the stage is ACTIVE")
    hook: list[str] | None = Field(None, description="command run after the stage; non-zero exit rolls back")
    hook_timeout_seconds: float = Field(120, gt=0, le=3600)


class OperationSpec(BaseModel):
    id: str = Field(description="chosen by the client; retrying with the same id is safe")
    tenant: str
    kind: Kind
    group: str | None = None
    volume: str | None = None
    point: str = "latest"
    flavor: str | None = None
    count: int = Field(1, ge=1, le=100)
    time_limit_seconds: int | None = Field(None, gt=0, le=7 * 24 * 3600)
    hook: list[str] | None = None
    isolated: bool | None = Field(None, description="own isolated network (default: only for DR tests)")
    stages: list[Stage] | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _OP_ID.match(v):
            raise ValueError(f"operation id {v!r}: use 3-40 characters a-z, 0-9, '-', starting with a letter or digit")
        return v

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, v: str) -> str:
        return check_tenant(v)

    @model_validator(mode="after")
    def _shape(self) -> "OperationSpec":
        if self.kind is Kind.PLAN:
            if not self.stages:
                raise ValueError("a recovery plan needs `stages` (each a list of servers)")
            names = [s.name for st in self.stages for s in st.servers]
            if len(names) != len(set(names)):
                raise ValueError("server names in a plan must be unique")
        else:
            if self.stages:
                raise ValueError(f"`stages` is only for kind=plan, not {self.kind.value}")
            if not self.group or not self.volume:
                raise ValueError(f"a {self.kind.value} needs `group` and `volume`")
            check_volume(self.group)
            check_volume(self.volume)
            if self.kind is not Kind.BURST and self.count != 1:
                raise ValueError("`count` is only for kind=burst")
        if self.kind is Kind.DRTEST and self.time_limit_seconds is None:
            self.time_limit_seconds = 3600  # a forgotten DR test must not run (and bill) forever
        return self

    @property
    def is_isolated(self) -> bool:
        return self.kind is Kind.DRTEST if self.isolated is None else self.isolated

    def server_for(self, index: int) -> ServerSpec:
        return ServerSpec(name=f"s{index}", group=self.group or "", volume=self.volume or "",
                          point=self.point, flavor=self.flavor)

    def stage_list(self, count: int | None = None) -> list[Stage]:
        """The boot stages; for a burst, ``count`` (after scaling) replaces the requested count."""
        if self.kind is Kind.PLAN:
            return list(self.stages or [])
        n = count if count is not None else self.count
        return [Stage(name="main", servers=[self.server_for(i) for i in range(n)], hook=self.hook)]

    def all_servers(self, count: int | None = None) -> list[ServerSpec]:
        return [s for st in self.stage_list(count) for s in st.servers]
