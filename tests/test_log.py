"""Logging: tracebacks are masked text on the console and in the JSON file, no frame locals,
one log file open at a time, and a log file that fills up does not stop a run."""

from __future__ import annotations

import base64
import io
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
import structlog

from bulkprov.log import configure
from bulkprov.redact import Redactor

from .enginekit import AWS, connection, write_secrets

pytestmark = pytest.mark.anyio


def canary() -> str:
    """A value the AWS target accepts as a secret access key (40 characters)."""
    return "Cn4ry/" + secrets.token_hex(17)


def encoded(value: str) -> list[str]:
    """The value and the encoded forms a test looks for in output."""
    return [
        value,
        quote(value, safe=""),
        base64.b64encode(value.encode()).decode().rstrip("="),
        value.replace("/", "\\/"),
    ]


def _crash(secret: str) -> None:
    token = secret  # a local variable holding the secret: a locals dump would print it
    raise RuntimeError(f"the target refused {quote(token, safe='')}")


def test_logged_exception_is_masked_text_without_locals(tmp_path: Path) -> None:
    """``log.exception`` puts the traceback on the console and in the JSON log file as text
    with the secret (and its encoded forms) masked, and no frame's local variables."""
    secret = canary()
    red = Redactor()
    red.add(secret)
    console = io.StringIO()
    log_file = tmp_path / "log.jsonl"
    configure(console_level="info", log_file=log_file, redactor=red, stream=console)
    try:
        _crash(secret)
    except RuntimeError:
        structlog.get_logger("t").exception("step_crashed", instance="a", step="start")
    configure(console_level="warning")
    shown, written = console.getvalue(), log_file.read_text()
    for form in encoded(secret):
        assert form not in shown and form not in written
    assert "Traceback (most recent call last)" in shown and "in _crash" in shown
    assert "\u2502" not in shown and "\u256d" not in shown  # no box of frame locals (rich)
    assert "token = '" not in shown and "secret = '" not in shown
    record = orjson.loads(written.splitlines()[-1])
    assert "exc_info" not in record
    assert "Traceback (most recent call last)" in record["exception"]
    assert "RuntimeError: the target refused *****" in record["exception"]


def test_configure_closes_the_previous_log_file(tmp_path: Path) -> None:
    """Configuring logging again closes the log file the previous configuration opened, even
    while a logger bound under it is still held; that logger writes nothing more to it."""

    def open_on(path: Path) -> int:
        fds = Path("/proc/self/fd")
        return sum(1 for fd in fds.iterdir() if _target(fd) == str(path))

    first, second = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    configure(log_file=first)
    stale = structlog.get_logger("t").bind(held="yes")  # keeps the first configuration
    stale.warning("before")
    assert open_on(first) == 1
    configure(log_file=second)
    assert open_on(first) == 0 and open_on(second) == 1
    stale.warning("after")
    assert [orjson.loads(x)["event"] for x in first.read_bytes().splitlines()] == ["before"]
    configure()
    assert open_on(second) == 0


def _target(fd: Path) -> str:
    try:
        return os.readlink(fd)
    except OSError:
        return ""


def test_a_full_log_file_warns_once_and_logging_goes_on() -> None:
    """With the log file on a full disk (/dev/full) logging raises nothing: one warning on
    stderr says the file gets no more lines, and the console goes on showing events."""
    console = io.StringIO()
    mode = os.stat("/dev/full").st_mode
    configure(console_level="info", log_file=Path("/dev/full"), stream=console)
    log = structlog.get_logger("t")
    for i in range(3):
        log.warning("something", n=i)
    configure(console_level="warning")
    text = console.getvalue()
    assert text.count("cannot write log file /dev/full") == 1, text
    assert text.count("something") == 3
    assert os.stat("/dev/full").st_mode == mode  # a device keeps its mode


async def test_a_run_with_its_log_file_on_a_full_disk_finishes(mock: Any, tmp_path: Path) -> None:
    """A run whose --log-file is on a full disk (/dev/full) sets every instance up: the file
    sink stops with one warning on stderr, and the run goes on."""
    from bulkprov.client import GraphClient
    from bulkprov.run import Runner
    from bulkprov.settings import ClientSettings, RunSettings

    write_secrets(tmp_path / "secrets")
    (tmp_path / "secrets" / "short").write_text("x" * 39)  # the target refuses it: warnings
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "key,displayName,template,cred.ClientSecret,cred.SecretToken,start\n"
        + "".join(
            f"a{i},AWS full {i},{AWS},file:secrets/key-id,file:secrets/secret,false\n"
            for i in range(2)
        )
        + f"bad,AWS full bad,{AWS},file:secrets/key-id,file:secrets/short,false\n"
    )
    console = io.StringIO()
    configure(console_level="info", log_file=Path("/dev/full"), stream=console)
    settings = ClientSettings(time_scale=mock.settings.time_scale)
    async with GraphClient(connection(mock), settings) as c:
        result = await Runner(
            manifest=manifest,
            ledger_path=tmp_path / "l.jsonl",
            client=c,
            settings=RunSettings(monitor=False),
        ).run()
    configure(console_level="warning")
    assert result.statuses == {"done": 2, "failed": 1}
    assert "step_failed" in console.getvalue()
    assert console.getvalue().count("cannot write log file /dev/full") == 1


async def test_a_crashing_step_leaks_its_secret_nowhere(
    mock: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step that raises an unexpected exception with the instance's secret in a local
    variable and, encoded, in its message: the console, the JSON log file, the ledger and the
    run's failures (summary.json) hold neither the secret nor an encoded form of it, and the
    JSON log holds the (masked) traceback."""
    from bulkprov.client import GraphClient
    from bulkprov.records import Step
    from bulkprov.run import Runner
    from bulkprov.settings import ClientSettings, RunSettings
    from bulkprov.steps.base import Context, StepResult
    from bulkprov.steps.credentials import Start, credentials

    secret = canary()
    write_secrets(tmp_path / "secrets", secret=secret)
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "key,displayName,template,cred.ClientSecret,cred.SecretToken,start\n"
        f"a,AWS canary,{AWS},file:secrets/key-id,file:secrets/secret,true\n"
    )

    async def start(self: Start, ctx: Context) -> StepResult:
        creds = credentials(ctx, Step.START)
        token = creds[1]["value"]  # the secret, in a local variable of the failing frame
        basic = base64.b64encode(f"svc:{token}".encode()).decode()
        raise RuntimeError(f"target said: Authorization: Basic {basic}; key={quote(token)}")

    monkeypatch.setattr(Start, "run", start)
    red = Redactor()
    console = io.StringIO()
    log_file = tmp_path / "log.jsonl"
    configure(console_level="info", log_file=log_file, redactor=red, stream=console)
    settings = ClientSettings(time_scale=mock.settings.time_scale)
    async with GraphClient(connection(mock), settings) as c:
        result = await Runner(
            manifest=manifest,
            ledger_path=tmp_path / "l.jsonl",
            client=c,
            settings=RunSettings(monitor=False),
            redactor=red,
        ).run()
    configure(console_level="warning")
    assert result.statuses == {"failed": 1}
    assert result.failures[0]["code"] == "Unexpected"
    outputs = {
        "console": console.getvalue(),
        "log file": log_file.read_text(),
        "ledger": (tmp_path / "l.jsonl").read_text(),
        "summary": orjson.dumps(result.failures).decode(),
    }
    basic_core = base64.b64encode(secret.encode()[1:]).decode()[:40]  # alignment of "svc:"
    for where, text in outputs.items():
        for form in [*encoded(secret), basic_core, secret[:8]]:
            assert form not in text, (where, form)
    crashed = [
        orjson.loads(line)
        for line in outputs["log file"].splitlines()
        if b'"step_crashed"' in line.encode()
    ]
    assert len(crashed) == 1
    assert "Traceback (most recent call last)" in crashed[0]["exception"]
    assert "RuntimeError: target said: Authorization: Basic" in crashed[0]["exception"]
    assert "*****" in crashed[0]["exception"]
    assert "Traceback (most recent call last)" in outputs["console"]
