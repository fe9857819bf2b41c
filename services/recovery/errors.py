"""Recovery's errors. Each carries the HTTP status the API answers with.

400 malformed request (none or several of sequence / timestamp / bookmark,
    a target key inside the journal's prefix, ...)
404 unknown group, volume or bookmark (another tenant's group is unknown too)
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
