"""Early writeback is kicked after every N bytes and never fails a write."""

from __future__ import annotations

import os
import time

from agent import writeback
from agent.writeback import Writeback, start_writeback


def test_start_writeback_on_a_real_file(tmp_path):
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        os.write(fd, b"x" * 100_000)
        start_writeback(fd)  # returns without waiting; raises on a bad descriptor
    finally:
        os.close(fd)


def test_kicks_after_threshold(tmp_path, monkeypatch):
    kicked = []
    monkeypatch.setattr(writeback, "start_writeback", lambda fd: kicked.append(fd))
    path = tmp_path / "f"
    base = os.open(path, os.O_RDWR | os.O_CREAT)
    wb = Writeback(lambda: [os.dup(base)], every=1000)
    try:
        wb.wrote(600)
        time.sleep(0.1)
        assert kicked == []
        wb.wrote(600)
        deadline = time.monotonic() + 5
        while not kicked and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(kicked) == 1
    finally:
        wb.close()
        os.close(base)


def test_disabled_when_zero():
    wb = Writeback(lambda: [], every=0)
    wb.wrote(10**9)
    wb.close()
    assert not wb._thread.is_alive()
