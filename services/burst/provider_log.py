"""What only the provider may read: hook output and a reverse tap's answers.

Hooks run on the burst host with the service's credentials in their environment
(S3 keys, OS_PASSWORD, the admin token), and a reverse tap's answer is whatever
the host behind its URL sent. Neither goes into an event, a state summary or an
HTTP answer, which tenants read: the detail is written to the service's log under
a fresh reference, and the tenant-visible message carries only that reference.
"""

from __future__ import annotations

import logging
import uuid

log = logging.getLogger("dialback.burst.provider")


def to_provider_log(what: str, detail: str) -> str:
    """Log ``detail`` (never shown to tenants) with a new reference; return the reference."""
    ref = uuid.uuid4().hex[:12]
    log.warning("%s [ref %s]: %s", what, ref, detail)
    return ref
