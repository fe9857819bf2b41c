"""Group manifests from the control topic's GroupRegistered events.

Recovery needs each volume's size to build a sparse image; ingest announces
it in ``{"type": "GroupRegistered", "group", "volumes": [{"volume", "size"}],
"time"}`` on ``dialback.<tenant>.control``. Other event types are ignored.
Writing a manifest is idempotent; a cache skips rewriting an unchanged one.
"""

from __future__ import annotations

import json
import logging

from shared import keys
from shared.journal import manifest_doc
from shared.objectstore import ObjectStore
from shared.tenancy import check_volume, tenant_bucket

log = logging.getLogger(__name__)


class ManifestWriter:
    def __init__(self, store: ObjectStore, bucket_prefix: str = "dialback-") -> None:
        self.store = store
        self.bucket_prefix = bucket_prefix
        self._written: dict[tuple[str, str], bytes] = {}

    def handle(self, tenant: str, value: bytes) -> str | None:
        """Apply one control event; returns the group whose manifest was written, if any."""
        try:
            doc = json.loads(value)
        except (ValueError, TypeError) as err:
            log.error("tenant %s: control event is not JSON (%s); ignored", tenant, err)
            return None
        if not isinstance(doc, dict) or doc.get("type") != "GroupRegistered":
            return None
        try:
            group = check_volume(doc["group"])
            volumes = {check_volume(v["volume"]): int(v["size"]) for v in doc["volumes"]}
        except (KeyError, TypeError, ValueError) as err:
            log.error("tenant %s: GroupRegistered event malformed (%r); ignored", tenant, err)
            return None
        body = manifest_doc(group, volumes)
        if self._written.get((tenant, group)) == body:
            return None
        bucket = tenant_bucket(tenant, self.bucket_prefix)
        self.store.ensure_bucket(bucket)
        self.store.put(bucket, keys.manifest_key(group), body)
        self._written[(tenant, group)] = body
        log.info("tenant %s: manifest of group %s written (%s)", tenant, group, volumes)
        return group
