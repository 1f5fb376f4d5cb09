"""Structured logs: a console for humans on stderr, and JSON lines to a file (mode 600).

Every event passes the run's :class:`~bulkprov.ledger.Redactor` first, so a secret value that
found its way into an error message is masked before any sink sees it. This configuration is
bulkprov's only global state.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import IO, Any, TextIO, cast

import orjson
import structlog

from .ledger import Redactor

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure(
    *,
    console_level: str = "warning",
    log_file: Path | None = None,
    redactor: Redactor | None = None,
    stream: IO[str] | None = None,
) -> None:
    redactor = redactor or Redactor()
    threshold = LEVELS[console_level]
    sink: IO[bytes] | None = None
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.chmod(log_file, 0o600)
        sink = os.fdopen(fd, "ab", buffering=0)

    def redact(
        _logger: Any, _name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        return cast(MutableMapping[str, Any], redactor.value(dict(event)))

    def tee(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if sink is not None:
            sink.write(orjson.dumps(event, default=str) + b"\n")
        if LEVELS.get(str(event.get("level")), logging.INFO) < threshold:
            raise structlog.DropEvent
        return event

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            tee,
            structlog.dev.ConsoleRenderer(colors=(stream or sys.stderr).isatty()),
        ],
        logger_factory=structlog.PrintLoggerFactory(cast(TextIO, stream or sys.stderr)),
        cache_logger_on_first_use=False,
    )
