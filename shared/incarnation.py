"""Spool incarnations: which spool a group's sequence numbers come from.

A spool numbers its records from 1 when it is created. A reinstalled agent or
an emptied spool would therefore send sequences ingest already acknowledged,
and ingest would deduplicate them away. Each spool gets a random incarnation
when it is created (agent/state.py); the agent sends it when it registers and
with every batch (``HEADER``), and ingest refuses a batch or a registration
from an incarnation it does not know for the group until an explicit
re-protection starts a new epoch (docs/ingest.md, "Incarnations").
"""

from __future__ import annotations

import re
import uuid

HEADER = "X-Dialback-Incarnation"
_PATTERN = re.compile(r"[0-9a-f]{16,64}")


def new_incarnation() -> str:
    """A fresh random incarnation (128 bits, lowercase hex)."""
    return uuid.uuid4().hex


def valid_incarnation(value: object) -> bool:
    """True for 16-64 lowercase hex digits (what new_incarnation makes)."""
    return isinstance(value, str) and _PATTERN.fullmatch(value) is not None
