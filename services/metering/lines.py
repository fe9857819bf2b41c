"""Billing lines: what metering publishes to ``dialback.billing``.

One line per (tenant, meter, subject, dimensions, hour) when the hour closes.
Line ids are deterministic (uuid5 of the bucket and its version), so a
consumer can deduplicate by id and the same state always yields the same ids.

Line types:

* ``usage``: the hour's quantity, published once when the hour closes.
* ``correction``: a late event changed an hour already published. The line
  carries the *delta* and ``corrects`` = the id of the previous line of the
  same bucket (null if the bucket had none). Summing ``quantity`` over all
  lines of a bucket gives its current total: corrections never rewrite.
* ``licence``: one licence-hour for each hour an explicit licence was on.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

LINE_NAMESPACE = uuid.UUID("6f0c3a4e-9a63-5f1c-9a4e-3d1b2c0e7d11")
LINE_SCHEMA = "io.dialback.billing.line.v1"
HOUR = 3600


def hour_iso(hour: int) -> str:
    return datetime.fromtimestamp(hour * HOUR, timezone.utc).isoformat().replace("+00:00", "Z")


def line_id(bucket_key: str, version: int) -> str:
    return str(uuid.uuid5(LINE_NAMESPACE, f"{bucket_key}#{version}"))


@dataclass
class BillingLine:
    id: str
    type: str  # usage | correction | licence
    tenant: str
    meter: str
    unit: str
    subject: str
    hour: int  # hour index: epoch seconds // 3600
    quantity: int
    events: int
    version: int
    attributes: dict = field(default_factory=dict)
    corrects: str | None = None
    published_at: float = 0.0
    schema: str = LINE_SCHEMA

    def to_json(self) -> bytes:
        d = asdict(self)
        d["hour_start"] = hour_iso(self.hour)
        d["hour_end"] = hour_iso(self.hour + 1)
        return json.dumps(d, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "BillingLine":
        d = json.loads(raw)
        d.pop("hour_start", None)
        d.pop("hour_end", None)
        return cls(**d)
