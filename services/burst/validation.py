"""Check a request completely before any cloud resource is made.

Unknown flavor, missing network, unknown recovery point or a request that
cannot fit the quota is refused here with a clear message, so a refused
request leaves nothing behind.
"""

from __future__ import annotations

from services.burst.errors import QuotaExceeded, UnknownFlavor, UnknownNetwork
from services.burst.images import ImageSource, validate as validate_point
from services.burst.model import OperationSpec, ServerSpec
from services.burst.provider.base import Flavor, Provider

GIB = 1 << 30


def pick_flavor(flavors: dict[str, Flavor], requested: str | None, image_size: int | None,
                default: str | None = None) -> str:
    """The requested flavor, else the default, else the smallest whose disk holds the image."""
    name = requested or default
    if name:
        if name not in flavors:
            raise UnknownFlavor(f"flavor {name!r} does not exist; choose one of: {', '.join(sorted(flavors))}")
        return name
    fits = [f for f in flavors.values() if image_size is None or f.disk_gb * GIB >= image_size]
    if not fits:
        raise UnknownFlavor(f"no flavor has a disk large enough for a {image_size} byte image; "
                            "ask the cloud operator for a larger flavor")
    return min(fits, key=lambda f: (f.disk_gb, f.ram_mb, f.vcpus, f.name)).name


def check_quota(provider: Provider, flavors: dict[str, Flavor], servers: list[ServerSpec],
                default: str | None) -> None:
    room = provider.headroom()
    smallest = min(flavors.values(), key=lambda f: (f.ram_mb, f.vcpus)) if flavors else None
    chosen = [flavors[s.flavor or default] if (s.flavor or default) else smallest for s in servers]
    cores = sum(f.vcpus for f in chosen if f)
    ram = sum(f.ram_mb for f in chosen if f)
    for what, need, left, unit in (("instances", len(servers), room.instances, ""),
                                   ("cores", cores, room.cores, ""), ("RAM", ram, room.ram_mb, " MB")):
        if left is not None and need > left:
            raise QuotaExceeded(f"this needs {need}{unit} {what} but the project has only {left}{unit} left; "
                                "ask for fewer or smaller servers, clean up other operations, or raise the quota")


def validate(spec: OperationSpec, provider: Provider, images: ImageSource, prod_network: str,
             default_flavor: str | None) -> None:
    servers = spec.all_servers()
    for key in sorted({(s.group, s.volume, s.point) for s in servers}):  # first: needs no cloud call
        validate_point(images, spec.tenant, *key)
    flavors = provider.flavors()
    for s in servers:
        if s.flavor or default_flavor:
            pick_flavor(flavors, s.flavor, None, default_flavor)
    if not spec.is_isolated and provider.find_network(prod_network) is None:
        raise UnknownNetwork(f"network {prod_network!r} does not exist; create it or set DIALBACK_BURST_PROD_NETWORK")
    check_quota(provider, flavors, servers, default_flavor)
