"""Retention policy per protection group, stored as ``groups/<g>/policy.json``.

``{"anypoint_hours": N, "hourly_days": D, "daily_weeks": W}``: every write
is kept for N hours (any point), then the state at each whole UTC hour for
D days, then at each UTC midnight for W weeks. A missing object means the
default (24 h / 7 days / 4 weeks). Rollup and GC read the object on every
run, so a change applies at the next run without a restart.

Retained points are boundary instants H (ns): the group's state "at H" is
after every write with timestamp <= H. The any-point window starts at the
*floor*: the last whole hour at or before ``now - N h``; the floor is itself
a retained point (its base is where any-point recovery starts).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from shared import keys
from shared.errors import DialbackError
from shared.objectstore import ObjectNotFound, ObjectStore

HOUR_NS = 3600 * 10**9
DAY_NS = 24 * HOUR_NS
WEEK_NS = 7 * DAY_NS


class PolicyError(DialbackError, ValueError):
    """A policy is invalid; the message names the field and the allowed range."""


@dataclass(frozen=True)
class Policy:
    anypoint_hours: float = 24.0
    hourly_days: float = 7.0
    daily_weeks: float = 4.0

    def __post_init__(self) -> None:
        for name, lo, hi in (("anypoint_hours", 1, 24 * 366), ("hourly_days", 0, 366), ("daily_weeks", 0, 520)):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not lo <= v <= hi:
                raise PolicyError(f"{name} must be a number in [{lo}, {hi}], got {v!r}")

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes, where: str = "policy") -> "Policy":
        try:
            doc = json.loads(raw)
            unknown = set(doc) - {"anypoint_hours", "hourly_days", "daily_weeks"}
            if unknown:
                raise PolicyError(f"unknown fields {sorted(unknown)}")
            return cls(**doc)
        except PolicyError as err:
            raise PolicyError(f"{where}: {err}") from err
        except (ValueError, TypeError) as err:
            raise PolicyError(f"{where} is not a valid policy document: {err!r}") from err

    def floor_ns(self, now_ns: int) -> int:
        """Start of the any-point window: the whole hour at or before now - N h."""
        return (now_ns - int(self.anypoint_hours * HOUR_NS)) // HOUR_NS * HOUR_NS

    def retained_points(self, now_ns: int) -> list[int]:
        """Every retained boundary at or before the floor, ascending (the floor included)."""
        floor = self.floor_ns(now_ns)
        pts = {floor}
        h_from = now_ns - int(self.hourly_days * DAY_NS)
        h = -(-h_from // HOUR_NS) * HOUR_NS
        while h < floor:
            pts.add(h)
            h += HOUR_NS
        d_from = now_ns - int(self.daily_weeks * WEEK_NS)
        d = -(-d_from // DAY_NS) * DAY_NS
        while d < floor:
            pts.add(d)
            d += DAY_NS
        return sorted(pts)


def read_policy(store: ObjectStore, bucket: str, group: str) -> Policy:
    try:
        raw = store.get(bucket, keys.policy_key(group))
    except ObjectNotFound:
        return Policy()
    return Policy.from_json(raw, f"{bucket}/{keys.policy_key(group)}")


def write_policy(store: ObjectStore, bucket: str, group: str, policy: Policy) -> None:
    store.put(bucket, keys.policy_key(group), policy.to_json())
