"""Creating a tenant with its agent credentials (token + transport key), used by the CLI and the local pipeline.

The transport key is generated here, stored only wrapped under the master key
(keyring entry ``transport:<tenant>``) and handed out once, in the 0600
credentials file. Without a keyring the tenant ships plaintext.
"""

from __future__ import annotations

from pathlib import Path

from shared.auth import TenantExists, create_tenant, read_tenants
from shared.credentials import AgentCredentials, CredentialsError, write_credentials
from shared.crypto.keyring import Keyring, transport_entry


def create_tenant_with_credentials(tenants_file: Path, name: str, credentials: Path,
                                   ring: Keyring | None) -> AgentCredentials:
    """Create tenant ``name``; write its credentials file; return the credentials."""
    credentials = Path(credentials)
    if name in read_tenants(Path(tenants_file)):
        raise TenantExists(f"tenant {name!r} already exists in {tenants_file}; pick another name")
    if credentials.exists():  # checked before the tenant exists, so a refusal changes nothing
        raise CredentialsError(f"credentials file {credentials} already exists; choose another path with --credentials")
    if ring is not None and ring.find(transport_entry(name)) is not None:
        raise CredentialsError(f"the keyring already holds a transport key for {name!r}; pick another tenant name")
    token = create_tenant(tenants_file, name)
    key = ring.data_key(transport_entry(name)) if ring is not None else None
    creds = AgentCredentials(name, token, key)
    write_credentials(credentials, creds)
    return creds
