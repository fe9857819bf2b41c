"""Instant access: serve a recovery point over NBD without materializing it."""
