"""The project's own checks, run with the tests so that CI keeps them green."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing() -> None:
    """ruff, configured in pyproject.toml, reports no problem in bulkprov or the tests."""
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "bulkprov", "tests"], cwd=ROOT,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout[-3000:]


def test_mypy_strict_passes() -> None:
    """mypy --strict, configured in pyproject.toml, accepts the bulkprov package."""
    out = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stdout[-3000:]
