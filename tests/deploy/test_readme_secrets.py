"""The README's command lines carry no secrets: `ps` shows every process's arguments to every user."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _command_lines() -> list[str]:
    blocks = re.findall(r"```(?:sh|bash|console)?\n(.*?)```", README.read_text(), re.S)
    return [line for b in blocks for line in b.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_no_token_or_password_on_a_readme_command_line():
    lines = _command_lines()
    assert any("dialback" in line for line in lines)  # the parser found the commands
    leaks = [line for line in lines if re.search(r"--(token|password|secret)\b(?!-)|\bDIALBACK_TOKEN=\S", line)]
    assert not leaks, "secrets on command lines (visible in ps): " + "; ".join(leaks)
