"""Creating a tenant with its agent credentials (token + transport key), used by the CLI and the local pipeline.

The transport key is generated here, stored only wrapped under the master key
(keyring entry ``transport:<tenant>``) and handed out once, in the 0600
credentials file. The data key of the tenant's bucket is created here too
(:func:`tenant_entries`), so retention and recovery find every key the
tenant's data needs instead of creating one lazily. Without a keyring the
tenant ships plaintext.
"""

from __future__ import annotations

from pathlib import Path

from shared.auth import TenantExists, create_tenant, read_tenants
from shared.credentials import AgentCredentials, CredentialsError, write_credentials
from shared.crypto.keyring import Keyring, tenant_entries, transport_entry


def create_tenant_with_credentials(tenants_file: Path, name: str, credentials: Path,
                                   ring: Keyring | None, bucket_prefix: str = "dialback-") -> AgentCredentials:
    """Create tenant ``name`` and every keyring entry its data needs; write its credentials file.

    The keys are stored (and confirmed on disk) before the credentials are
    written or the token returned, so no agent can ship for the tenant
    before its keys exist. Returns the credentials.
    """
    credentials = Path(credentials)
    if name in read_tenants(Path(tenants_file)):
        raise TenantExists(f"tenant {name!r} already exists in {tenants_file}; pick another name")
    if credentials.exists():  # checked before the tenant exists, so a refusal changes nothing
        raise CredentialsError(f"credentials file {credentials} already exists; choose another path with --credentials")
    if ring is not None and ring.find(transport_entry(name)) is not None:
        raise CredentialsError(f"the keyring already holds a transport key for {name!r}; pick another tenant name")
    token = create_tenant(tenants_file, name)
    key = None
    if ring is not None:
        ring.ensure(*tenant_entries(name, bucket_prefix))
        key = ring.data_key(transport_entry(name))
    creds = AgentCredentials(name, token, key)
    write_credentials(credentials, creds)
    return creds
