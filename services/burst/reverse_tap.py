"""Which reverse taps the burst host may contact during a failback.

The agent_url of a failback request is recorded in its FailbackRequested event
(with who asked): that is the operation's registered reverse tap, and it is the
only URL the failback contacts. It must be one of the provider's allowed
authorities (DIALBACK_BURST_FAILBACK_ALLOWED_HOSTS: ``host:port`` or ``host``
for any port), checked when the request is recorded and again before every
contact (the setting may have changed since). No redirects are followed, and
the URL may carry no credentials, path, query or fragment: a tenant cannot make
the burst host fetch anything but a tap's control API on an allowed host.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from services.burst.errors import InvalidRequest

SETTING = "DIALBACK_BURST_FAILBACK_ALLOWED_HOSTS"


def parse_allowed(spec: str | list[str] | None) -> frozenset[str]:
    items = spec.split(",") if isinstance(spec, str) else list(spec or [])
    return frozenset(i.strip().lower() for i in items if i.strip())


def check_reverse_tap(url: str, allowed: frozenset[str]) -> str:
    """The normalized control URL (scheme://host:port) if it may be contacted; else InvalidRequest."""
    hint = "the reverse tap's control URL, e.g. http://127.0.0.1:7450"
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as err:
        raise InvalidRequest(f"agent_url is not a URL; give {hint}") from err
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"agent_url must be {hint}")
    if parts.username or parts.password or parts.path.strip("/") or parts.query or parts.fragment:
        raise InvalidRequest(f"agent_url must be only scheme://host:port ({hint}), without path or credentials")
    host = parts.hostname.lower()
    port = port or (443 if parts.scheme == "https" else 80)
    shown = f"[{host}]" if ":" in host else host
    authority = f"{shown}:{port}"
    if authority not in allowed and shown not in allowed:
        raise InvalidRequest(f"the burst host does not contact {authority}: reverse taps must be on a host the "
                             f"provider allowed ({SETTING}); ask your provider to add the tap's host:port")
    return f"{parts.scheme}://{authority}"
