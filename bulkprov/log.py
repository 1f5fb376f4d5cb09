"""Structured logs: a console for humans on stderr, and JSON lines to a file (mode 600).

Every event passes the run's :class:`~bulkprov.redact.Redactor` first, so a secret value that
found its way into an error message is masked before any sink sees it. An exception logged
with ``log.exception`` is rendered to plain traceback text (``format_exc_info``) *before* that
masking: the console shows the masked text, never the frames' local variables, and the JSON
file carries it in its ``exception`` field. A log file that can no longer be written (a full
disk) is given up with one warning on stderr; the run goes on. This configuration is
bulkprov's only global state.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import sys
import threading
from collections.abc import MutableMapping
from pathlib import Path
from typing import IO, Any, TextIO, cast

import orjson
import structlog

from .errors import ConfigError
from .redact import Redactor

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_PLAIN = (str, int, float, bool, type(None), dict, list, tuple)


class _FileSink:
    """JSON lines appended to a file descriptor, until a write fails."""

    def __init__(self, path: Path, fd: int, warn: IO[str]) -> None:
        self.path = path
        self._fd: int | None = fd
        self._warn = warn
        self._lock = threading.Lock()
        self._render = structlog.processors.JSONRenderer(serializer=orjson.dumps)

    def write(self, event: MutableMapping[str, Any]) -> None:
        line = cast(bytes, self._render(None, "", event)) + b"\n"
        with self._lock:
            fd = self._fd
            if fd is None:  # given up
                return
            try:
                if os.write(fd, line) != len(line):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            except OSError as exc:
                self.close()
                with contextlib.suppress(OSError, ValueError):
                    print(
                        f"bulkprov: warning: cannot write log file {self.path}: "
                        f"{exc.strerror or exc}; it gets no more lines, the run goes on",
                        file=self._warn,
                        flush=True,
                    )

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


_sink: _FileSink | None = None


def _open_sink(log_file: Path, warn: IO[str]) -> _FileSink:
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot open log file {log_file}: {exc.strerror or exc}") from None
    if stat.S_ISREG(os.fstat(fd).st_mode):  # a device (/dev/stderr, /dev/full) keeps its mode
        os.fchmod(fd, 0o600)
    return _FileSink(log_file, fd, warn)


def configure(
    *,
    console_level: str = "warning",
    log_file: Path | None = None,
    redactor: Redactor | None = None,
    stream: IO[str] | None = None,
) -> None:
    global _sink
    redactor = redactor or Redactor()
    threshold = LEVELS[console_level]
    out = stream or sys.stderr
    if _sink is not None:  # the previous configuration's file is closed, not leaked
        _sink.close()
        _sink = None
    sink = _sink = _open_sink(log_file, out) if log_file is not None else None

    def redact(
        _logger: Any, _name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        # an object that is not plain data is shown by its text: masked like any other text
        plain = {k: v if isinstance(v, _PLAIN) else str(v) for k, v in event.items()}
        return cast(MutableMapping[str, Any], redactor.value(plain))

    def tee(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if sink is not None:
            sink.write(event)
        if LEVELS.get(str(event.get("level")), logging.INFO) < threshold:
            raise structlog.DropEvent
        return event

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # the traceback becomes text here, so that the redactor masks it; plain text has no
            # frame locals, which could hold any secret
            structlog.processors.format_exc_info,
            redact,
            tee,
            structlog.dev.ConsoleRenderer(
                colors=out.isatty(), exception_formatter=structlog.dev.plain_traceback
            ),
        ],
        logger_factory=structlog.PrintLoggerFactory(cast(TextIO, out)),
        cache_logger_on_first_use=False,
    )
