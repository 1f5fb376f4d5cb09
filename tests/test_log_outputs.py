"""Logging's two outputs: the console from its level (-v/-vv), the JSON log file with every
event (one object a line, mode 600, closed when asked), context bound with
``bound_contextvars``, and the redactor before both."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import anyio
import anyio.lowlevel
import orjson
import pytest
import structlog
from structlog.contextvars import bound_contextvars
from structlog.testing import capture_logs

from bulkprov import log as log_mod
from bulkprov.log import configure, event_chain
from bulkprov.redact import Redactor

SECRET = "Zq8/secret-" + "x" * 20


def _open_on(path: Path) -> int:
    """How many of this process's descriptors are open on ``path``."""
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            count += os.readlink(fd) == str(path)
    return count


def _lines(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _levels_shown(console_level: str) -> list[str]:
    stream = io.StringIO()
    with configure(console_level=console_level, stream=stream):
        log = structlog.get_logger("t")
        log.debug("e_debug")
        log.info("e_info")
        log.warning("e_warning")
        log.error("e_error")
    return [w.removeprefix("e_") for w in stream.getvalue().split() if w.startswith("e_")]


@pytest.mark.parametrize(
    ("level", "shown"),
    [
        ("warning", ["warning", "error"]),  # no -v
        ("info", ["info", "warning", "error"]),  # -v
        ("debug", ["debug", "info", "warning", "error"]),  # -vv
    ],
)
def test_the_console_shows_events_from_its_level(level: str, shown: list[str]) -> None:
    assert _levels_shown(level) == shown


def test_the_log_file_gets_every_event_one_json_object_a_line(tmp_path: Path) -> None:
    """At the console's default level the JSON file still gets the debug and info events,
    each line one object with the event, its level, a UTC timestamp and its fields."""
    path = tmp_path / "logs" / "run.jsonl"
    console = io.StringIO()
    with configure(log_file=path, stream=console):
        log = structlog.get_logger("t")
        log.debug("quiet", n=1)
        log.info("said", path=Path("/x"))
        log.warning("loud", items=[1, "two"])
    records = _lines(path)
    assert [(r["event"], r["level"]) for r in records] == [
        ("quiet", "debug"),
        ("said", "info"),
        ("loud", "warning"),
    ]
    assert records[0]["n"] == 1 and records[1]["path"] == "/x"  # not plain data: its text
    assert records[2]["items"] == [1, "two"]
    assert all(str(r["timestamp"]).endswith("Z") for r in records)
    assert "quiet" not in console.getvalue() and "loud" in console.getvalue()


def test_the_log_file_is_mode_600_and_appended_to(tmp_path: Path) -> None:
    """A log file that exists with a wider mode is narrowed to 600 and appended to."""
    path = tmp_path / "run.jsonl"
    path.write_bytes(orjson.dumps({"event": "earlier"}) + b"\n")
    path.chmod(0o644)
    with configure(log_file=path):
        structlog.get_logger("t").warning("later")
    assert (path.stat().st_mode & 0o777) == 0o600
    assert [r["event"] for r in _lines(path)] == ["earlier", "later"]


def test_close_closes_the_log_file_and_the_console_goes_on(tmp_path: Path) -> None:
    """``log.close()`` (what a command does when it ends) closes the log file's descriptor;
    events after it reach the console only, and closing again does nothing."""
    path = tmp_path / "run.jsonl"
    console = io.StringIO()
    outputs = configure(log_file=path, stream=console)
    log = structlog.get_logger("t")
    log.warning("before")
    assert _open_on(path) == 1
    log_mod.close()
    assert _open_on(path) == 0 and outputs.log_file is not None and outputs.log_file.closed
    log.warning("after")
    log_mod.close()
    outputs.close()
    assert [r["event"] for r in _lines(path)] == ["before"]
    assert "before" in console.getvalue() and "after" in console.getvalue()
    assert "cannot write log file" not in console.getvalue()  # closing is no failure


def test_leaving_the_with_block_closes_the_log_file(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    with configure(log_file=path) as outputs:
        assert _open_on(path) == 1
    assert _open_on(path) == 0 and outputs.log_file is not None and outputs.log_file.closed


def test_an_unopenable_log_file_is_a_one_line_error(tmp_path: Path) -> None:
    from bulkprov.errors import ConfigError

    (tmp_path / "dir").mkdir()
    with pytest.raises(ConfigError, match=r"^cannot open log file .*dir: Is a directory$"):
        configure(log_file=tmp_path / "dir")


def test_bound_context_reaches_both_outputs_and_ends_with_the_block(tmp_path: Path) -> None:
    """Inside ``bound_contextvars(instance=..., step=...)`` every event carries both fields,
    on the console and in the JSON file; after the block they are gone, and a field given
    to the call itself wins over the bound one."""
    path = tmp_path / "run.jsonl"
    console = io.StringIO()
    with configure(console_level="info", log_file=path, stream=console):
        log = structlog.get_logger("t")
        with bound_contextvars(instance="k1", step="schema"):
            log.info("inside")
            log.info("overridden", step="start")
        log.info("outside")
    inside, overridden, outside = _lines(path)
    assert (inside["instance"], inside["step"]) == ("k1", "schema")
    assert (overridden["instance"], overridden["step"]) == ("k1", "start")
    assert "instance" not in outside and "step" not in outside
    shown = console.getvalue().splitlines()
    assert "instance=k1" in shown[0] and "step=schema" in shown[0]
    assert "instance" not in shown[2]


@pytest.mark.anyio
async def test_each_task_logs_its_own_bound_instance() -> None:
    """Instances set up concurrently, each in its own task under ``bound_contextvars``: every
    event names the instance of the task that logged it, never a neighbour's."""
    configure(console_level="info")

    async def instance(key: str) -> None:
        with bound_contextvars(instance=key):
            for step in ("instantiate", "schema", "start"):
                with bound_contextvars(step=step):
                    await anyio.lowlevel.checkpoint()  # the other tasks run between bind and log
                    structlog.get_logger("t").info("step_done", mark=f"{key}/{step}")

    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as events:
        async with anyio.create_task_group() as tg:
            for i in range(5):
                tg.start_soon(instance, f"k{i}")
    assert len(events) == 15
    assert all(e["mark"] == f"{e['instance']}/{e['step']}" for e in events)
    assert {e["instance"] for e in events} == {f"k{i}" for i in range(5)}


def test_a_secret_in_bound_context_or_fields_is_masked_before_either_output(tmp_path: Path) -> None:
    """A secret (or its percent-encoded form) in a bound context value, an event field or a
    non-plain object's text is masked on the console and in the JSON file alike."""
    from urllib.parse import quote

    red = Redactor()
    red.add(SECRET)

    class Holder:
        def __str__(self) -> str:
            return f"holder of {SECRET}"

    path = tmp_path / "run.jsonl"
    console = io.StringIO()
    with (
        configure(console_level="info", log_file=path, redactor=red, stream=console),
        bound_contextvars(instance="k1", note=f"url?key={quote(SECRET, safe='')}"),
    ):
        structlog.get_logger("t").info("said", error=f"refused {SECRET}", obj=Holder())
    written, shown = path.read_text(), console.getvalue()
    for text in (written, shown):
        assert SECRET not in text and quote(SECRET, safe="") not in text
        assert "*****" in text
    (record,) = _lines(path)
    assert record["error"] == "refused *****" and record["obj"] == "holder of *****"


def test_capture_logs_with_the_event_chain_sees_what_the_outputs_get() -> None:
    """``capture_logs(processors=event_chain(redactor))`` shows an event as both outputs get
    it: level, timestamp, bound context, masked values, the traceback as text."""
    red = Redactor()
    red.add(SECRET)
    with (
        capture_logs(processors=event_chain(red)) as events,
        bound_contextvars(instance="k1", step="start"),
    ):
        try:
            raise RuntimeError(f"target said {SECRET}")
        except RuntimeError:
            structlog.get_logger("t").exception("step_crashed")
    (event,) = events
    assert event["event"] == "step_crashed" and event["level"] == "error"
    assert (event["instance"], event["step"]) == ("k1", "start")
    assert "exc_info" not in event and "timestamp" in event
    assert "RuntimeError: target said *****" in str(event["exception"])
    assert SECRET not in repr(event)


def test_a_log_file_left_open_is_a_resource_warning(tmp_path: Path) -> None:
    """A log file nobody closed warns when collected (the suite's ``filterwarnings`` lets
    only the mock server's sockets through, so such a leak fails a test)."""
    import gc

    from bulkprov.log import JsonLogFile

    leaked = JsonLogFile(tmp_path / "run.jsonl", print)
    with pytest.warns(ResourceWarning, match="unclosed file"):
        del leaked
        gc.collect()


def test_a_command_closes_its_log_file_when_it_ends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`bulkprov run --log-file` leaves no descriptor on the log file once the command has
    ended, here on a manifest it refuses (exit 2)."""
    from bulkprov.cli import main

    manifest = tmp_path / "m.csv"
    manifest.write_text("key,displayName,template\na,,nosuchtemplate\n")
    path = tmp_path / "run.jsonl"
    args = ["run", str(manifest), "--ledger", str(tmp_path / "l.jsonl"), "--log-file", str(path)]
    assert main(args) == 2
    assert "error" in capsys.readouterr().err
    assert path.exists() and _open_on(path) == 0
