"""Errors raised by the data tap; messages say what went wrong and what to do."""

from shared.errors import DialbackError


class AgentError(DialbackError):
    """Base class for the agent's errors."""


class SpoolError(AgentError):
    """The local spool is unreadable or inconsistent."""


class BookmarkError(AgentError):
    """A bookmark cannot be taken (bad or duplicate name, unsafe moment)."""


class FreezeError(AgentError):
    """fsfreeze or a hook script failed."""
