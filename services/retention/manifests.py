"""Group manifests from the control topic's GroupRegistered events.

Recovery needs each volume's size to build a sparse image; ingest announces
it in ``{"type": "GroupRegistered", "group", "volumes": [{"volume", "size"}],
"time"}`` on ``dialback.<tenant>.control``. Other event types are ignored.
Writing a manifest is idempotent; a cache skips rewriting an unchanged one
that is still in the store (a manifest lost since is written again).

A lost manifest is also rebuilt without the control topic
(:func:`rebuild_missing`, run by the retention job before rollup and GC):
every base document lists each volume of the group with its size in bytes
(shared/bases.py), written from the manifest that was in force, so the
newest base restores it. The control topic cannot serve here: it is
consumed once, with committed offsets, and compacted, so the retention
service does not see a group's registration again. A group that lost its
manifest before its first base (journal only: the initial sync is not
rolled up yet) cannot be rebuilt this way; the job logs it (ingest does not
re-announce a registered group, so an operator restores it).
"""

from __future__ import annotations

import json
import logging

from shared import bases as B
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
        bucket = tenant_bucket(tenant, self.bucket_prefix)
        if self._written.get((tenant, group)) == body and self.store.exists(bucket, keys.manifest_key(group)):
            return None
        self.store.ensure_bucket(bucket)
        self.store.put(bucket, keys.manifest_key(group), body)
        self._written[(tenant, group)] = body
        log.info("tenant %s: manifest of group %s written (%s)", tenant, group, volumes)
        return group


def rebuild_missing(store: ObjectStore, bucket: str, groups: list[str]) -> tuple[list[str], list[str]]:
    """Write the manifest of every group in ``groups`` that has bases but no manifest, from its newest base.

    Returns (rebuilt, unrecoverable): the latter have no manifest and no base (journal only).
    """
    rebuilt, missing = [], []
    for group in groups:
        if store.exists(bucket, keys.manifest_key(group)):
            continue
        newest = B.latest_base_at(store, bucket, group, 2**63)
        if newest is None:
            if any(True for _ in store.list(bucket, keys.timeline_prefix(group))):
                missing.append(group)
                log.error("%s: group %s has a journal but no manifest and no base to rebuild it from; rollup and "
                          "recovery skip it until %s is restored (the volumes and sizes registered with ingest)",
                          bucket, group, keys.manifest_key(group))
            continue
        volumes = {v: vc.size for v, vc in newest.volumes.items()}
        store.put(bucket, keys.manifest_key(group), manifest_doc(group, volumes))
        rebuilt.append(group)
        log.warning("%s: manifest of group %s was missing; rebuilt from base %d (%s)", bucket, group,
                    newest.sequence, volumes)
    return rebuilt, missing
