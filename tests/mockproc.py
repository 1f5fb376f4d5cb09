"""Waiting for a `bulkprov mock-graph` process: until its info file parses, never a sleep."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

import orjson

from bulkprov.mockgraph import MockInfo


def wait_for_info(path: Path, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> MockInfo:
    """The mock's info once ``path`` holds all of it; fails if the mock exits or the time is up."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"the mock exited ({proc.returncode})"
        with contextlib.suppress(FileNotFoundError, orjson.JSONDecodeError, TypeError, KeyError):
            return MockInfo.from_json(path.read_bytes())  # absent, or written only in part
        assert time.monotonic() < deadline, "the mock did not start"
        time.sleep(0.02)
