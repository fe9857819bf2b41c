"""Creating a tenant with its credentials, used by the CLI and the local pipeline.

Two credentials (shared.auth): the agent's (scope ``ingest``: register groups, ship
batches), written with the transport key into the agent's 0600 credentials file, and
the tenant operator's (scope ``operate``: list, recover, export, burst), returned to
be shown once. The agent's file on a protected server can therefore not recover,
export or burst anything.

The transport key is generated here, stored only wrapped under the master key
(keyring entry ``transport:<tenant>``) and handed out once, in the 0600
credentials file. The data key of the tenant's bucket is created here too
(:func:`tenant_entries`), so retention and recovery find every key the
tenant's data needs instead of creating one lazily. Without a keyring the
tenant ships plaintext.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shared.auth import OPERATE, TenantExists, create_tenant, issue, read_tenants
from shared.credentials import AgentCredentials, CredentialsError, write_credentials
from shared.crypto.keyring import Keyring, tenant_entries, transport_entry


@dataclass(frozen=True)
class NewTenant:
    agent: AgentCredentials  # what the credentials file holds
    operator_token: str = field(repr=False)  # scope operate; shown once
    operator_id: str = ""


def create_tenant_with_credentials(tenants_file: Path, name: str, credentials: Path,
                                   ring: Keyring | None, bucket_prefix: str = "dialback-") -> NewTenant:
    """Create tenant ``name`` and every keyring entry its data needs; write its agent credentials file.

    The keys are stored (and confirmed on disk) before the credentials are
    written or the tokens returned, so no agent can ship for the tenant
    before its keys exist. Returns the agent's credentials and the operator token.
    """
    credentials = Path(credentials)
    if name in read_tenants(Path(tenants_file)):
        raise TenantExists(f"tenant {name!r} already exists in {tenants_file}; pick another name")
    if credentials.exists():  # checked before the tenant exists, so a refusal changes nothing
        raise CredentialsError(f"credentials file {credentials} already exists; choose another path with --credentials")
    if ring is not None and ring.find(transport_entry(name)) is not None:
        raise CredentialsError(f"the keyring already holds a transport key for {name!r}; pick another tenant name")
    token = create_tenant(tenants_file, name)  # the agent's credential
    operator = issue(tenants_file, name, [OPERATE], label="operator")
    key = None
    if ring is not None:
        ring.ensure(*tenant_entries(name, bucket_prefix))
        key = ring.data_key(transport_entry(name))
    creds = AgentCredentials(name, token, key)
    write_credentials(credentials, creds)
    return NewTenant(creds, operator.token, operator.credential.id)
