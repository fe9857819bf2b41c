"""Ingest's errors. Each names what is wrong and, where it can, what to do.

``reason`` is a short stable label used in metrics; routes map classes to
HTTP statuses (services.ingest.api.errors).
"""

from __future__ import annotations

from shared.errors import DialbackError


class IngestError(DialbackError):
    reason = "error"

    def __init__(self, message: str, *, records: int = 0) -> None:
        super().__init__(message)
        self.records = records  # records decoded before refusing, for metrics


class InvalidRegistration(IngestError):
    reason = "invalid_registration"


class GroupConflict(IngestError):
    """The group or one of its volumes is already registered differently."""

    reason = "conflict"


class UnknownGroup(IngestError):
    """Unknown group, or another tenant's: deliberately indistinguishable."""

    reason = "unknown_group"


class BatchTooLarge(IngestError):
    reason = "too_large"


class MalformedBatch(IngestError):
    """Frame decoding failed (truncated, bad CRC, bad header, ...)."""

    reason = "malformed"


class BadSequence(IngestError):
    """Records inside the batch are not ascending and gap-free, or time runs backwards."""

    reason = "bad_sequence"


class ForeignVolume(IngestError):
    """A record names a volume outside the group, or writes past its end."""

    reason = "foreign_volume"


class SequenceGap(IngestError):
    reason = "gap"

    def __init__(self, message: str, *, expected: int, records: int = 0) -> None:
        super().__init__(message, records=records)
        self.expected = expected


class IngestUnavailable(IngestError):
    """Kafka did not take the batch; nothing was acknowledged."""

    reason = "unavailable"


class Overloaded(IngestError):
    """Ingest holds as many body bytes as it may (for this tenant or in all); nothing was read into memory
    past the limit and nothing was acknowledged: retry after the Retry-After the answer carries."""

    reason = "overloaded"


class BadSeal(IngestError):
    """A sealed body that is malformed or does not authenticate (or cannot be opened at all)."""

    reason = "bad_seal"


class PlaintextRefused(IngestError):
    """An unsealed body from a tenant that has a transport key (no downgrade)."""

    reason = "plaintext"


class TransportMisconfigured(IngestError):
    """Ingest cannot unwrap a transport key: the operator's master key is wrong."""

    reason = "key_config"


class IncarnationConflict(IngestError):
    """A registration or batch from a spool (incarnation) that does not protect the group now.

    Answered 409 with ``reason`` "incarnation" (never with ``expected``: an agent must not
    take it as "ingest already holds these sequences").
    """

    reason = "incarnation"

    def __init__(self, message: str, *, epoch: int, acked_through: int, records: int = 0) -> None:
        super().__init__(message, records=records)
        self.epoch = epoch
        self.acked_through = acked_through
