"""Burst errors: each says what went wrong and what the user can do about it."""

from shared.errors import DialbackError


class BurstError(DialbackError):
    """Base of the burst service's errors."""


class InvalidRequest(BurstError, ValueError):
    """The request cannot be carried out as given; nothing was created."""


class UnknownFlavor(InvalidRequest):
    pass


class UnknownNetwork(InvalidRequest):
    pass


class UnknownPoint(InvalidRequest):
    """The image source has no such group, volume or recovery point."""


class QuotaExceeded(BurstError):
    """The cloud refused (or would refuse) for lack of quota."""


class NotFound(BurstError):
    """A cloud resource or an operation does not exist (deleting it again is fine)."""


class Conflict(BurstError):
    """The same operation id was used with a different request, or the operation is in the wrong state."""


class ProvisionFailed(BurstError):
    """The cloud accepted a request but did not deliver (server ERROR, timeout, hook failed)."""
