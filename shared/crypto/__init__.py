"""Envelope encryption: a provider master key wraps per-tenant data keys."""
