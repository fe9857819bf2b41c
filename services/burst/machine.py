"""The operation state machine: an operation's state is the fold of its events.

    requested -> provisioning -> running -> cleaning -> cleaned
                      |             |\\-> scaling -> running
                      |             \\-> failing_back -> cleaning (or back to running on failure)
                      \\-> rolling_back -> failed

`apply` refuses an event the current state does not allow (a bug, or a
second writer), so a log can never describe an impossible history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.burst.model import OperationSpec

TERMINAL = {"cleaned", "failed"}

ALLOWED: dict[str, set[str]] = {
    "OperationRequested": {"new"},
    "ProvisioningStarted": {"requested", "provisioning"},
    "NetworkCreated": {"provisioning", "scaling"},
    "PointResolved": {"provisioning", "scaling"},
    "ImageUploaded": {"provisioning", "scaling"},
    "PortCreated": {"provisioning", "scaling"},
    "ServerCreated": {"provisioning", "scaling"},
    "ServerActive": {"provisioning", "scaling"},
    "BootFailed": {"provisioning", "scaling"},
    "HookRan": {"provisioning"},
    "StageCompleted": {"provisioning"},
    "OperationRunning": {"provisioning", "scaling"},
    "ScaleRequested": {"running", "scaling"},
    "ServerDeleted": {"scaling", "cleaning", "rolling_back"},
    "UsageEmitted": {"running", "scaling", "failing_back", "cleaning", "rolling_back"},
    "OperationFailed": {"requested", "provisioning", "scaling"},
    "CleanupRequested": {"requested", "provisioning", "running", "scaling", "failing_back", "cleaning"},
    # failback (failback.py): running -> failing_back -> (FailbackVerified) cleaning, or back to running
    "FailbackRequested": {"running"},
    "BaselineVerified": {"failing_back"},
    "CutoverBookmarked": {"failing_back"},
    "ChangesDrained": {"failing_back"},
    "ChangesApplied": {"failing_back"},
    "FailbackVerified": {"failing_back"},
    "FailbackFailed": {"failing_back"},
    "ResourceDeleted": {"cleaning", "rolling_back"},
    "OperationCleaned": {"cleaning"},
    "RolledBack": {"rolling_back"},
}

NEXT_STATUS = {
    "OperationRequested": "requested",
    "ProvisioningStarted": "provisioning",
    "OperationRunning": "running",
    "ScaleRequested": "scaling",
    "OperationFailed": "rolling_back",
    "CleanupRequested": "cleaning",
    "FailbackRequested": "failing_back",
    "FailbackVerified": "cleaning",
    "FailbackFailed": "running",
    "OperationCleaned": "cleaned",
    "RolledBack": "failed",
}


class IllegalTransition(Exception):
    pass


@dataclass
class OperationState:
    tenant: str = ""
    id: str = ""
    status: str = "new"
    spec: OperationSpec | None = None
    network: dict[str, str] = field(default_factory=dict)        # network_id, subnet_id
    points: dict[str, str] = field(default_factory=dict)         # image key -> concrete point ("latest" pinned)
    images: dict[str, dict] = field(default_factory=dict)        # image key -> {id, checksum, size, seconds}
    ports: dict[str, str] = field(default_factory=dict)          # server name -> port id
    servers: dict[str, dict] = field(default_factory=dict)       # server name -> {id, flavor, status, ...}
    stages_done: list[str] = field(default_factory=list)
    desired_count: int | None = None
    deadline: float | None = None
    error: str | None = None
    cleanup_reason: str | None = None
    deleted: list[dict] = field(default_factory=list)
    usage_until: dict[str, float] = field(default_factory=dict)  # server name -> billed up to (epoch)
    timings: dict[str, float] = field(default_factory=dict)
    failback: dict[str, Any] = field(default_factory=dict)       # request + progress of a failback
    requested_at: float | None = None
    version: int = 0

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def live_servers(self) -> dict[str, dict]:
        return {n: s for n, s in self.servers.items() if not s.get("deleted")}

    def summary(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant, "id": self.id, "status": self.status,
            "kind": self.spec.kind.value if self.spec else None,
            "servers": self.servers, "points": self.points, "images": self.images, "network": self.network,
            "stages_done": self.stages_done, "deadline": self.deadline, "error": self.error,
            "cleanup_reason": self.cleanup_reason, "timings": self.timings, "failback": self.failback, "events": self.version,
            "spec": self.spec.model_dump(mode="json") if self.spec else None,
        }


def apply(state: OperationState, ev: dict) -> OperationState:
    t = ev["type"]
    if t not in ALLOWED:
        raise IllegalTransition(f"unknown event type {t!r}")
    if state.status not in ALLOWED[t]:
        raise IllegalTransition(f"{t} is not allowed in state {state.status!r} (operation {state.id})")
    s = state
    if t == "OperationRequested":
        s.spec = OperationSpec.model_validate(ev["spec"])
        s.tenant, s.id, s.requested_at = s.spec.tenant, s.spec.id, ev["time"]
        s.desired_count = s.spec.count
    elif t == "NetworkCreated":
        s.network = {"network_id": ev["network_id"], "subnet_id": ev["subnet_id"]}
    elif t == "PointResolved":
        s.points[ev["key"]] = ev["point"]
    elif t == "ImageUploaded":
        s.images[ev["key"]] = {k: ev[k] for k in ("id", "checksum", "size", "seconds")}
        s.timings["materialize"] = s.timings.get("materialize", 0.0) + ev.get("materialize_seconds", 0.0)
        s.timings["image_upload"] = s.timings.get("image_upload", 0.0) + ev["seconds"]
    elif t == "PortCreated":
        s.ports[ev["name"]] = ev["port_id"]
    elif t == "ServerCreated":
        s.servers[ev["name"]] = {"id": ev["server_id"], "flavor": ev["flavor"], "status": "BUILD",
                                 "image": ev["image_id"], "stage": ev["stage"], "created_at": ev["time"]}
        # port + server create calls (flavor lookup included), before nova starts building
        s.timings["create_calls"] = max(s.timings.get("create_calls", 0.0), ev.get("api_seconds", 0.0))
    elif t == "ServerActive":
        s.servers[ev["name"]].update(status="ACTIVE", addresses=ev["addresses"], active_at=ev["time"])
        s.usage_until.setdefault(ev["name"], ev["time"])
        s.timings["boot"] = max(s.timings.get("boot", 0.0), ev["seconds"])
    elif t == "BootFailed":
        s.servers[ev["name"]].update(deleted=True, status="ERROR", error=ev["error"])
    elif t == "HookRan":
        pass
    elif t == "StageCompleted":
        s.stages_done.append(ev["stage"])
    elif t == "OperationRunning":
        s.deadline = ev.get("deadline")
        if s.requested_at is not None:
            s.timings["to_running"] = ev["time"] - s.requested_at
    elif t == "ScaleRequested":
        s.desired_count = ev["count"]
    elif t == "ServerDeleted":
        s.servers[ev["name"]].update(deleted=True, status="DELETED")
        s.ports.pop(ev["name"], None)  # its port went with it; a later scale-up makes a new one
    elif t == "UsageEmitted":
        s.usage_until[ev["name"]] = ev["until"]
    elif t == "OperationFailed":
        s.error = ev["error"]
    elif t == "CleanupRequested":
        s.cleanup_reason = s.cleanup_reason or ev["reason"]
    elif t == "FailbackRequested":
        # A retry keeps only the verified baseline of the same target: the cut-over and the apply are
        # redone (applying is idempotent; the cloud may have written more since).
        keep = {"baseline": s.failback["baseline"]} if "baseline" in s.failback and \
            s.failback.get("target") == ev.get("target") else {}
        s.failback = {**{k: ev.get(k) for k in ("reverse_group", "reverse_volume", "target", "agent_url",
                                                "requested_by", "expect_sha256")}, **keep, "attempt": s.version}
        s.error = None
    elif t == "BaselineVerified":
        s.failback["baseline"] = ev["md5"]
    elif t == "CutoverBookmarked":
        s.failback["cutover_sequence"] = ev["sequence"]
    elif t == "ChangesDrained":
        s.failback["drained"] = True
    elif t == "ChangesApplied":
        s.failback["applied"] = {"records": ev["records"], "bytes": ev["bytes"]}
        s.timings["failback_apply"] = ev["seconds"]
    elif t == "FailbackVerified":
        s.failback["sha256"] = ev["sha256"]
        s.cleanup_reason = "failed back"
    elif t == "FailbackFailed":
        s.failback["error"] = s.error = ev["error"]
    elif t == "ResourceDeleted":
        s.deleted.append({"kind": ev["kind"], "id": ev["id"]})
        for srv in s.servers.values():
            if ev["kind"] == "server" and srv["id"] == ev["id"]:
                srv.update(deleted=True, status="DELETED")
    s.status = NEXT_STATUS.get(t, s.status)
    s.version += 1
    return s


def fold(events: list[dict]) -> OperationState:
    state = OperationState()
    for ev in events:
        state = apply(state, ev)
    return state
