"""README.md stays valid Markdown where it breaks most easily: its code fences."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"```[A-Za-z0-9_+-]*")


def fence_problems(text: str) -> list[str]:
    """Lines where ``` is not a fence of its own, and an unclosed last fence."""
    problems = []
    fences = 0
    for n, line in enumerate(text.splitlines(), start=1):
        if "```" not in line:
            continue
        if FENCE.fullmatch(line.strip()) is None:
            problems.append(f"line {n}: ``` inside a line: {line.strip()[:60]!r}")
            continue
        fences += 1
    if fences % 2:
        problems.append(f"{fences} fences: the last one is never closed")
    return problems


def test_readme_fences_are_balanced() -> None:
    """Every ``` of the README is on a line of its own and every fence is closed, so that
    no section after it renders as code."""
    assert fence_problems(README.read_text(encoding="utf-8")) == []


def test_a_fence_closed_mid_line_is_caught() -> None:
    """The check catches a fence closed in the middle of a line and one left open."""
    assert fence_problems("```\ncode\n``` and text\n") != []
    assert fence_problems("```toml\na = 1\n```\n```\nopen\n") != []
    assert fence_problems("```toml\na = 1\n```\n") == []
