"""Licences: the model lives in :mod:`shared.licences` (every service that enforces one reads it there)."""

from shared.licences import HOUR, Licence, LicenceBook, licence_key  # noqa: F401 - re-exported
