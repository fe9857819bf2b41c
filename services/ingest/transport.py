"""Opening sealed batch bodies before validation (docs/encryption.md, "Transport").

A tenant with a transport key in the keyring must send sealed bodies (no
downgrade); a tenant without one must send plaintext. Nothing here logs or
returns key material.
"""

from __future__ import annotations

from services.ingest.errors import BadSeal, PlaintextRefused, TransportMisconfigured
from shared.crypto.keyring import Keyring, KeyringError, transport_entry
from shared.crypto.transport import TransportError, open_sealed


class TransportKeys:
    """Tenant -> transport key, from the keyring (None: no keyring configured)."""

    def __init__(self, ring: Keyring | None) -> None:
        self.ring = ring

    def key(self, tenant: str) -> bytes | None:
        if self.ring is None:
            return None
        try:
            return self.ring.find(transport_entry(tenant))
        except KeyringError as err:
            raise TransportMisconfigured(
                "ingest cannot unwrap this tenant's transport key; the operator must check that "
                "DIALBACK_MASTER_KEY_FILE is the current master key") from err


def open_body(keys: TransportKeys, tenant: str, group: str, body: bytes,
              sealed: bool) -> tuple[bytes, tuple[int, int] | None]:
    """(plaintext batch, sealed (first, last) or None); refuses what the tenant's key state forbids."""
    key = keys.key(tenant)
    if key is None:
        if sealed:
            raise BadSeal("this tenant has no transport key, so ingest cannot open a sealed batch; "
                          "send the batch unsealed or create the tenant with a master key configured")
        return body, None
    if not sealed:
        raise PlaintextRefused("this tenant's batches must be sealed with its transport key "
                               "(Content-Type application/x-dialback-sealed-batch); give the agent the "
                               "credentials file from `dialback tenant create` (--credentials)")
    try:
        batch, first, last = open_sealed(key, tenant, group, body)
    except TransportError as err:
        raise BadSeal(str(err)) from None
    return batch, (first, last)
