"""Verify's findings: one :class:`Problem` per fault, and the run's :class:`VerifyReport`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Problem:
    key: str     # bucket/key of the object (or prefix) at fault
    what: str    # missing | truncated | tag failed | CRC mismatch | corrupt | chunk hash mismatch |
                 # timeline gap | range mismatch | malformed | unreadable
    detail: str

    def __str__(self) -> str:
        return f"{self.key}: {self.what}: {self.detail}"


@dataclass
class VerifyReport:
    bucket: str
    groups: list[str] = field(default_factory=list)
    objects: int = 0
    bytes: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {"bucket": self.bucket, "groups": self.groups, "ok": self.ok, "objects": self.objects,
                "bytes": self.bytes, "seconds": round(self.seconds, 3), "mb_per_s": round(self.mb_per_s, 2),
                "problems": [{"key": p.key, "what": p.what, "detail": p.detail} for p in self.problems]}
