"""Structured logs: a console for humans on stderr, and JSON lines to a file (mode 600).

structlog without the standard library's ``logging``: one processor chain (:func:`event_chain`)
builds every event, and the wrapped logger (:class:`Outputs`) hands the result to each sink,
which renders it with structlog's own renderer and writes it with structlog's own output
logger: ``ConsoleRenderer`` to a ``PrintLogger`` from the console's level (``-v``/``-vv``), and
``JSONRenderer(serializer=orjson.dumps)`` to a ``BytesLogger`` for every event.

Every event passes the run's :class:`~bulkprov.redact.Redactor` before either sink renders it,
so a secret value that found its way into an error message is masked everywhere. An exception
logged with ``log.exception`` is rendered to plain traceback text (``format_exc_info``) *before*
that masking: the console shows the masked text, never the frames' local variables, and the
JSON file carries it in its ``exception`` field. Context bound with
``structlog.contextvars.bound_contextvars(instance=..., step=...)`` is merged into every event
logged inside it (in that task). A log file that can no longer be written (a full disk) is
given up with one warning on the console; the run goes on.

:func:`configure` returns the :class:`Outputs` it installed; :func:`close` (or leaving the
``with`` block) closes the log file, and configuring again closes the previous one. This
configuration is bulkprov's only global state.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, BinaryIO, TextIO, cast

import orjson
import structlog
from structlog.types import EventDict, Processor, WrappedLogger

from .errors import ConfigError
from .redact import Redactor

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_PLAIN = (str, int, float, bool, type(None), dict, list, tuple)


def event_chain(redactor: Redactor) -> list[Processor]:
    """The processors every event passes, in order, before a sink renders it: the bound
    context, the level, a UTC timestamp, the traceback as text, and the redactor last.

    Tests pass it to ``structlog.testing.capture_logs(processors=...)`` to see events as the
    sinks get them."""

    def redact(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
        # an object that is not plain data is shown by its text: masked like any other text
        plain = {k: v if isinstance(v, _PLAIN) else str(v) for k, v in event.items()}
        return cast(EventDict, redactor.value(plain))

    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # the traceback becomes text here, so that the redactor masks it; plain text has no
        # frame locals, which could hold any secret
        structlog.processors.format_exc_info,
        redact,
    ]


class _Console:
    """Events from ``level`` up, as structlog's console lines (colours on a terminal)."""

    def __init__(self, level: int, stream: IO[str]) -> None:
        self.level = level
        self.stream = stream
        self._out = structlog.PrintLogger(cast(TextIO, stream))
        self._render = structlog.dev.ConsoleRenderer(
            colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback
        )

    def emit(self, method: str, event: EventDict) -> None:
        if LEVELS.get(str(event.get("level")), logging.INFO) >= self.level:
            self._out.msg(self._render(self._out, method, event))


class JsonLogFile:
    """Every event as one JSON object a line, appended to a file of mode 600, until a write
    fails: then the file is closed and ``warn`` is told once."""

    def __init__(self, path: Path, warn: Callable[[str], None]) -> None:
        self.path = path
        self._warn = warn
        self._lock = threading.Lock()
        self._file: BinaryIO | None = _open_600(path)
        self._out = structlog.BytesLogger(self._file)
        self._render = structlog.processors.JSONRenderer(serializer=orjson.dumps)

    @property
    def closed(self) -> bool:
        return self._file is None

    def emit(self, method: str, event: EventDict) -> None:
        if self._file is None:
            return
        line = cast(bytes, self._render(self._out, method, event))
        try:
            self._out.msg(line)  # written and flushed whole, or OSError
        except (OSError, ValueError) as exc:  # ValueError: closed meanwhile by another thread
            if self._close():
                self._warn(
                    f"bulkprov: warning: cannot write log file {self.path}: "
                    f"{getattr(exc, 'strerror', None) or exc}; it gets no more lines, "
                    "the run goes on"
                )

    def close(self) -> None:
        self._close()

    def _close(self) -> bool:
        """Close the file; False if it was closed already."""
        with self._lock:
            file, self._file = self._file, None
        if file is None:
            return False
        with contextlib.suppress(OSError):  # a flush that failed before fails again here
            file.close()
        return True


def _open_600(path: Path) -> BinaryIO:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot open log file {path}: {exc.strerror or exc}") from None
    if stat.S_ISREG(os.fstat(fd).st_mode):  # a device (/dev/stderr, /dev/full) keeps its mode
        os.fchmod(fd, 0o600)
    return open(fd, "ab")  # closed by JsonLogFile.close


class Outputs:
    """The logger structlog wraps: each event, as :func:`event_chain` left it, goes to the
    JSON log file (if any) and to the console (from its level), each rendering its own copy.

    Closing it closes the log file; a logger still bound to this configuration then writes
    only to the console. Usable as a context manager."""

    def __init__(self, console: _Console, log_file: JsonLogFile | None) -> None:
        self.console = console
        self.log_file = log_file

    def _emit(self, method: str, event: dict[str, Any]) -> None:
        if self.log_file is not None:
            self.log_file.emit(method, dict(event))
        self.console.emit(method, event)

    def msg(self, **event: Any) -> None:
        self._emit("msg", event)

    def debug(self, **event: Any) -> None:
        self._emit("debug", event)

    def info(self, **event: Any) -> None:
        self._emit("info", event)

    def warning(self, **event: Any) -> None:
        self._emit("warning", event)

    def error(self, **event: Any) -> None:
        self._emit("error", event)

    def critical(self, **event: Any) -> None:
        self._emit("critical", event)

    warn = warning
    exception = error
    fatal = critical

    def close(self) -> None:
        if self.log_file is not None:
            self.log_file.close()

    def __enter__(self) -> Outputs:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_current: Outputs | None = None


def configure(
    *,
    console_level: str = "warning",
    log_file: Path | None = None,
    redactor: Redactor | None = None,
    stream: IO[str] | None = None,
) -> Outputs:
    """Send bulkprov's events to ``stream`` (stderr) from ``console_level`` up and, with
    ``log_file``, every event to that file as JSON lines. The previous configuration's log
    file is closed. Returns the outputs, whose ``close()`` closes the log file."""
    global _current
    close()
    out = stream or sys.stderr
    console = _Console(LEVELS[console_level], out)

    def warn(text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            print(text, file=out, flush=True)

    file = JsonLogFile(log_file, warn) if log_file is not None else None
    outputs = _current = Outputs(console, file)
    lowest = logging.DEBUG if file is not None else console.level
    structlog.configure(
        processors=event_chain(redactor or Redactor()),
        wrapper_class=structlog.make_filtering_bound_logger(lowest),
        logger_factory=lambda *_args: outputs,
        cache_logger_on_first_use=False,
    )
    return outputs


def close() -> None:
    """Close the current configuration's log file (the console goes on); idempotent."""
    if _current is not None:
        _current.close()
