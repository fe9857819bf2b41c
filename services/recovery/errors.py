"""Recovery's errors. Each carries the HTTP status the API answers with.

400 malformed request (none or several of sequence / timestamp / bookmark,
    a target key inside the journal's prefix, ...)
404 unknown group, volume or bookmark (another tenant's group is unknown too)
409 a retained point inside an inconsistency window (the initial sync or a
    resync after a spool overflow, shared/consistency.py): no disk ever held
    it. The body names the nearest consistent points before and after it
    (``consistent_before`` / ``consistent_after``: {sequence, timestamp_ns} or null)
422 a well-formed point outside what is retained (before the initial sync
    completed, after the latest durable write)
"""

from __future__ import annotations

from shared.errors import DialbackError


class RecoveryError(DialbackError):
    status = 500


class BadRequest(RecoveryError, ValueError):
    status = 400


class NotFound(RecoveryError, LookupError):
    status = 404


class OutOfRange(RecoveryError):
    status = 422


class Inconsistent(OutOfRange):
    """A point inside an inconsistency window; ``extra`` holds the nearest consistent points for the body."""

    status = 409

    def __init__(self, message: str, before: dict | None, after: dict | None) -> None:
        super().__init__(message)
        self.extra = {"consistent_before": before, "consistent_after": after}
