"""The root of Dialback's error hierarchy; each package adds its own below it."""


class DialbackError(Exception):
    """Base class: the message says what went wrong and, where it can, what to do."""


class InvalidName(DialbackError, ValueError):
    """A tenant, volume or group id that Dialback cannot accept."""


class ConfigError(DialbackError):
    """The environment or the local stack is not set up as needed."""
