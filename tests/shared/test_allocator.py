"""tune_allocator: applied on glibc, switchable off."""

from __future__ import annotations

import ctypes

from shared import allocator


def test_applies_on_glibc():
    assert ctypes.CDLL("libc.so.6").mallopt  # this machine is glibc
    assert allocator.tune_allocator() is True


def test_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("DIALBACK_MALLOC_TUNING", "false")
    assert allocator.tune_allocator() is False


def test_large_buffers_still_work_after_tuning():
    allocator.tune_allocator()
    bufs = [bytes(8 << 20) for _ in range(4)]
    assert sum(len(b) for b in bufs) == 32 << 20
