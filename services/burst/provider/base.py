"""The provider contract: what burst needs from a cloud, and nothing more.

Tags: every resource a provider creates carries all of ``tags`` (for example
{"dialback-op": "op1", "dialback-tenant": "acme"}), and ``list_tagged`` finds
exactly the resources carrying all of them. That is how an operation finds
what it made after a crash and how cleanup proves nothing is left.

Idempotency: every ``ensure_*`` first looks for a resource with the same name
and tags and returns it; so a step that crashed after the cloud acted but
before the event was written is adopted, not duplicated.

Deletion: deleting a resource that is already gone succeeds.

Errors: UnknownFlavor / UnknownNetwork / QuotaExceeded / ProvisionFailed from
services.burst.errors; anything else escaping is a bug or a transient fault.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Flavor:
    name: str
    vcpus: int
    ram_mb: int
    disk_gb: int


@dataclass(frozen=True)
class Headroom:
    """How much more the project may create; None means unlimited."""

    instances: int | None
    cores: int | None
    ram_mb: int | None


@dataclass(frozen=True)
class ImageInfo:
    id: str
    checksum: str  # md5 hex of the bytes, as Glance reports it
    size: int
    status: str


@dataclass(frozen=True)
class ServerInfo:
    id: str
    status: str
    addresses: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Resource:
    kind: str  # server | port | image | volume | subnet | network
    id: str
    name: str


# Deletion order: what uses a thing goes before the thing.
DELETE_ORDER = ("server", "port", "volume", "image", "subnet", "network")


def tag_list(tags: dict[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in sorted(tags.items())]


class Provider(abc.ABC):
    @abc.abstractmethod
    def flavors(self) -> dict[str, Flavor]: ...

    @abc.abstractmethod
    def find_network(self, name: str) -> str | None:
        """The id of a network by name, or None."""

    @abc.abstractmethod
    def headroom(self) -> Headroom: ...

    @abc.abstractmethod
    def ensure_network(self, name: str, cidr: str, tags: dict[str, str]) -> tuple[str, str]:
        """An isolated network and subnet (no router); returns (network_id, subnet_id)."""

    @abc.abstractmethod
    def ensure_image(self, name: str, path: Path, tags: dict[str, str]) -> ImageInfo:
        """Upload a raw image file; an existing ACTIVE image with this name and tags is returned as is."""

    @abc.abstractmethod
    def ensure_port(self, name: str, network_id: str, tags: dict[str, str]) -> str: ...

    @abc.abstractmethod
    def ensure_server(self, name: str, image_id: str, flavor: str, port_id: str | None,
                      tags: dict[str, str]) -> str: ...

    @abc.abstractmethod
    def wait_active(self, server_id: str, timeout: float) -> ServerInfo:
        """Block until ACTIVE; ProvisionFailed on ERROR or timeout."""

    @abc.abstractmethod
    def list_tagged(self, tags: dict[str, str]) -> list[Resource]: ...

    @abc.abstractmethod
    def delete(self, resource: Resource, wait: float = 120.0) -> None:
        """Delete and wait until it is gone; gone already is success."""
