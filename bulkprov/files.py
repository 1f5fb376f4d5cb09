"""Files bulkprov writes besides the ledger: whole, private, and checked before the work."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError


def check_writable(path: Path, what: str) -> None:
    """Refuse, before any work is done, an output file that could not be written at the end:
    a directory, or a directory that does not exist and cannot be made, or is not writable."""
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a directory: give a file name")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the directory of {what} {path}: {exc.strerror}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {what} {path}: its directory is not writable")


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` whole (a temporary file renamed over it), created ``mode``."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # an older temporary file keeps its mode otherwise
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)
