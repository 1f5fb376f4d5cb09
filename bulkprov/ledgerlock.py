"""The lock a command that writes a ledger holds: ``flock`` on ``LEDGER.lock`` beside it."""

from __future__ import annotations

import contextlib
import fcntl
import os
from datetime import UTC, datetime
from pathlib import Path

import orjson

from .errors import LedgerError


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LedgerBusy(LedgerError):
    """Another bulkprov process holds the ledger."""


class LedgerLock:
    """An exclusive lock on a ledger for one command that writes it (``run``, ``cleanup``,
    ``monitor --restart``): ``flock`` on ``LEDGER.lock`` beside it, which the kernel releases
    when its holder exits or is killed, so nothing is left stale. The file names its holder
    (pid, command, since when) for the message a second command gets."""

    def __init__(self, ledger_path: Path, command: str) -> None:
        self.ledger_path = ledger_path
        self.path = ledger_path.with_name(ledger_path.name + ".lock")
        self.command = command
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                raise LedgerError(
                    f"cannot lock ledger {self.ledger_path}: {exc.strerror} ({self.path})"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._holder(fd)
                os.close(fd)
                raise LedgerBusy(
                    f"ledger {self.ledger_path} is in use by {holder}; wait for it to end "
                    "(or stop it) and run again"
                ) from None
            # a holder that released the lock just now unlinked the file we opened: lock the
            # file that is at the path, or two commands would each hold a lock
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(
            fd,
            orjson.dumps({"pid": os.getpid(), "command": self.command, "since": now_iso()}),
        )
        self._fd = fd

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            info = orjson.loads(os.pread(fd, 4096, 0))
            return (
                f"another bulkprov {info['command']} (pid {int(info['pid'])}, since "
                f"{info['since']})"
            )
        except (OSError, ValueError, KeyError, TypeError):
            return "another bulkprov process"

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # before the unlock: see acquire()
        os.close(fd)
