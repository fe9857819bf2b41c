"""Tenant names and the per-tenant names derived from them.

One module owns these names so that no service builds a topic or bucket name
by hand. Tenant ids are restricted so that every derived name is valid for
Kafka topics and S3 buckets alike and can never collide across tenants.
"""

from __future__ import annotations

import re

from shared.errors import InvalidName

_TENANT = re.compile(r"^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$")
_VOLUME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

USAGE_TOPIC = "dialback.usage"
BILLING_TOPIC = "dialback.billing"
LICENSING_TOPIC = "dialback.licensing"  # compacted: one record per licence switch (shared.licences)


def check_tenant(tenant: str) -> str:
    if not isinstance(tenant, str) or not _TENANT.match(tenant) or "--" in tenant:
        raise InvalidName(
            f"tenant id {tenant!r} is invalid: use 3-32 characters a-z, 0-9 and single '-', "
            "starting and ending with a letter or digit"
        )
    return tenant


def check_volume(volume: str) -> str:
    if not isinstance(volume, str) or not _VOLUME.match(volume):
        raise InvalidName(
            f"volume id {volume!r} is invalid: use 1-64 characters A-Z a-z 0-9 . _ -, starting with a letter or digit"
        )
    return volume


def writes_topic(tenant: str) -> str:
    return f"dialback.{check_tenant(tenant)}.writes"


def control_topic(tenant: str) -> str:
    return f"dialback.{check_tenant(tenant)}.control"


def tenant_bucket(tenant: str, prefix: str = "dialback-") -> str:
    return f"{prefix}{check_tenant(tenant)}"


def tenant_of_topic(topic: str) -> str | None:
    """The tenant a per-tenant topic belongs to, or None for shared topics."""
    parts = topic.split(".")
    if len(parts) == 3 and parts[0] == "dialback" and parts[2] in ("writes", "control"):
        return parts[1]
    return None
