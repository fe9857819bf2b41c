"""Agent settings, from DIALBACK_AGENT_* environment variables or the CLI.

Example: DIALBACK_AGENT_INGEST=https://ingest.example.net:8100 DIALBACK_AGENT_INGEST_CA_FILE=/etc/dialback/ca.pem
DIALBACK_AGENT_CREDENTIALS_FILE=... DIALBACK_AGENT_GROUP=web DIALBACK_AGENT_VOLUMES="disk0=/dev/sdb,disk1=/srv/d1.img"

The WAN leg is HTTPS with certificate verification (docs/agent.md, "TLS to ingest"): plain
``http://`` is accepted only for a loopback ingest (tests, a local TLS proxy).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from shared.config import CommonSettings, default_home
from shared.tenancy import check_volume
from shared.tls import client_context, is_loopback, parse_pin


def parse_volumes(spec: str | list[str]) -> dict[str, Path]:
    """'a=/p1,b=/p2' or ['a=/p1', 'b=/p2'] -> {'a': Path('/p1'), ...}."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: dict[str, Path] = {}
    for item in (i.strip() for i in items):
        if not item:
            continue
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise ValueError(f"volume {item!r} must look like NAME=PATH (for example disk0=/dev/sdb)")
        check_volume(name)
        if name in out:
            raise ValueError(f"volume {name!r} is given twice")
        out[name] = Path(path)
    return out


class AgentSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="DIALBACK_AGENT_", extra="ignore")

    ingest: str = Field("http://127.0.0.1:8100", description="ingest base URL: https://, or http:// to loopback only")
    ingest_ca_file: Path | None = Field(None, description="PEM CA bundle that ingest's certificate must chain to "
                                                          "(default: certifi's Mozilla bundle, or $SSL_CERT_FILE)")
    ingest_pins: str = Field("", description="SHA-256 pins (hex or base64, comma-separated) of ingest's public key "
                                             "(SPKI) or certificate; set: one must match, besides the CA check")
    token: SecretStr = Field(SecretStr(""), description="tenant bearer token for ingest")
    credentials_file: Path | None = Field(
        None, description="credentials file from `dialback tenant create` (token + transport key, 0600)")
    group: str = Field("default", description="protection (consistency) group id")
    volumes: str = Field("", description="NAME=PATH[,NAME=PATH...] exported over NBD and protected")
    spool_dir: Path = Field(default_factory=lambda: default_home() / "agent" / "spool")
    # Local endpoints (docs/agent.md, "Who may connect"): Unix sockets (0600) by default; TCP only
    # when asked for, and then NBD needs mutual TLS and the control API a token.
    nbd_socket: Path | None = Field(None, description="NBD Unix socket (default <spool_dir>/<group>.nbd.sock)")
    nbd_host: str = "127.0.0.1"
    nbd_port: int | None = Field(None, ge=0, le=65535, description="also serve NBD on TCP (needs nbd_tls_dir)")
    nbd_tls_dir: Path | None = Field(None, description="ca-cert.pem, server-cert.pem, server-key.pem "
                                     "(`dialback agent nbd-certs`): TCP clients need a certificate of that CA")
    control_socket: Path | None = Field(None, description="control API Unix socket "
                                        "(default <spool_dir>/<group>.control.sock)")
    control_host: str = "127.0.0.1"
    control_port: int | None = Field(None, ge=0, le=65535, description="also serve the control API on TCP "
                                     "(bearer token from control_token_file)")
    control_token_file: Path | None = Field(None, description="token for the TCP control API, created 0600 "
                                            "when missing (default <spool_dir>/<group>.control.token)")
    bookmark_hook: Path | None = Field(None, description="executable run with 'freeze' before and 'thaw' "
                                       "after every bookmark (requests cannot name one)")
    bookmark_fsfreeze: str = Field("", description="MOUNT[,MOUNT...] frozen around every bookmark")
    bandwidth: int | None = Field(None, description="shipping limit in bytes/s (none: unlimited)")
    spool_limit_bytes: int = Field(8 << 30, description="spool overflow threshold")
    spool_low_water_bytes: int | None = Field(None, description="resync starts below this (default: limit/4)")
    sync_pace_bytes: int | None = Field(None, description="sync pauses above this backlog (default: limit/2)")
    segment_bytes: int = 64 << 20
    spool_spare_segments: int = Field(2, ge=0, description="retired spool segment files kept for reuse (page-cache friendly)")
    spool_tail_bytes: int = Field(64 << 20, ge=0, description="unacknowledged entries also kept in memory, so the "
                                  "shipper reads them without disk reads or CRC passes (0: always read the files)")
    writeback_bytes: int = Field(8 << 20, description="start disk writeback after this many bytes (0: off)")
    backoff_cap_seconds: float = 10.0
    baseline: bool = Field(False, description="the disks already equal a point Dialback holds (a failover "
                                              "image, for failback): skip the initial full copy, ship only "
                                              "writes from now on")
    reprotect: bool = Field(False, description="take the group over with this spool when ingest knows it from "
                                               "another one (emptied spool, reinstalled agent): a new epoch, "
                                               "numbered after what ingest holds, starting with a full copy")
    batches_per_post: int = Field(8, ge=1, le=8, description="batches per request to ingest (1: one-batch bodies)")
    bodies_in_flight: int = Field(2, ge=1, le=4, description="requests to ingest on the wire at once (1: one at a time)")

    @model_validator(mode="after")
    def _reprotect_copies(self) -> "AgentSettings":
        if self.reprotect and self.baseline:
            raise ValueError("--reprotect copies the disks again; it cannot be combined with --baseline")
        return self

    @model_validator(mode="after")
    def _wan_is_tls(self) -> "AgentSettings":
        url = urlsplit(self.ingest)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"DIALBACK_AGENT_INGEST={self.ingest!r} is not an http(s) URL; give "
                             "https://HOST:PORT of ingest")
        if url.scheme == "http":
            if not is_loopback(url.hostname):
                raise ValueError(f"DIALBACK_AGENT_INGEST={self.ingest} is plain HTTP to {url.hostname}: the token, "
                                 "the writes and the acknowledgements the spool is trimmed on would cross the "
                                 "network unauthenticated. Use https:// (ingest serves TLS with "
                                 "DIALBACK_INGEST_TLS_CERT_FILE and _KEY_FILE) and DIALBACK_AGENT_INGEST_CA_FILE "
                                 "for a private CA; http:// is only for an ingest on 127.0.0.1")
            if self.ingest_ca_file or self.ingest_pins:
                raise ValueError("DIALBACK_AGENT_INGEST_CA_FILE / _PINS are set but DIALBACK_AGENT_INGEST is "
                                 f"{self.ingest} (plain HTTP, nothing to verify); use https://")
        self.pins()  # a malformed pin is refused now, not at the first connection
        return self

    def pins(self) -> list[bytes]:
        return [parse_pin(p) for p in self.ingest_pins.split(",") if p.strip()]

    def ingest_tls(self) -> ssl.SSLContext | None:
        """The verifying TLS context of the connection to ingest (None for http:// on loopback)."""
        if urlsplit(self.ingest).scheme != "https":
            return None
        return client_context(self.ingest_ca_file, self.pins(), what=f"ingest at {self.ingest}",
                              ca_var="DIALBACK_AGENT_INGEST_CA_FILE")

    @model_validator(mode="after")
    def _tcp_needs_tls(self) -> "AgentSettings":
        if self.nbd_port is not None and self.nbd_tls_dir is None:
            raise ValueError("NBD over TCP (nbd_port) needs nbd_tls_dir: anyone on this host could otherwise "
                             "read and write the protected disks. Create one with `dialback agent nbd-certs "
                             "DIR`, or leave nbd_port unset and connect to the Unix socket")
        return self

    @field_validator("bookmark_hook")
    @classmethod
    def _hook(cls, v: Path | None) -> Path | None:
        if v is not None and not v.is_absolute():
            raise ValueError(f"bookmark_hook must be an absolute path, got {str(v)!r}")
        return v

    @field_validator("bookmark_fsfreeze")
    @classmethod
    def _mounts(cls, v: str) -> str:
        for m in (m.strip() for m in v.split(",")):
            if m and not m.startswith("/"):
                raise ValueError(f"bookmark_fsfreeze takes absolute mount points, got {m!r}")
        return v

    @property
    def freeze_mounts(self) -> list[str]:
        return [m.strip() for m in self.bookmark_fsfreeze.split(",") if m.strip()]

    def local_path(self, given: Path | None, suffix: str) -> Path:
        """An endpoint file: the setting, else <spool_dir>/<group>.<suffix> (the agent's own directory)."""
        return given if given is not None else self.spool_dir / f"{self.group}.{suffix}"

    @field_validator("group")
    @classmethod
    def _group(cls, v: str) -> str:
        return check_volume(v)

    @field_validator("volumes")
    @classmethod
    def _volumes(cls, v: str) -> str:
        parse_volumes(v)
        return v

    @property
    def volume_map(self) -> dict[str, Path]:
        return parse_volumes(self.volumes)

    def shipping(self) -> tuple[str, tuple[str, bytes] | None]:
        """(bearer token, (tenant, transport key) or None), from the credentials file when one is set."""
        from shared.credentials import read_credentials

        if self.credentials_file is None:
            return self.token.get_secret_value(), None
        creds = read_credentials(self.credentials_file)
        sealing = (creds.tenant, creds.transport_key) if creds.transport_key else None
        return self.token.get_secret_value() or creds.token, sealing

    @property
    def low_water(self) -> int:
        return self.spool_low_water_bytes if self.spool_low_water_bytes is not None else self.spool_limit_bytes // 4

    @property
    def pace(self) -> int:
        return self.sync_pace_bytes if self.sync_pace_bytes is not None else self.spool_limit_bytes // 2
