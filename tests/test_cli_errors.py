"""Every command, given each class of bad input, says what is wrong in a line or a few, with
its documented exit code, no Python traceback, and no ledger written that it did not need."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from bulkprov.mockgraph import MockInfo

from .enginekit import aws_manifest
from .mockproc import wait_for_info


def _cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bulkprov.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "BULKPROV_PROFILES": str(cwd / "none.toml")},
    )


@pytest.fixture(scope="module")
def quiet_mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A `bulkprov mock-graph` process without latency; yields its info file."""
    d = tmp_path_factory.mktemp("mock")
    info = d / "mock.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bulkprov.cli",
            "mock-graph",
            "--port",
            "0",
            "--info-file",
            str(info),
            "--time-scale",
            "0.01",
            "--no-latency",
            "--state-dir",
            str(d / "state"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_info(info, proc)
    yield info
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def work(tmp_path: Path, quiet_mock: Path) -> Path:
    """A directory with a good manifest (m.csv), one with a misspelled template (typo.csv),
    a ledger of another Graph (other.jsonl), a corrupt ledger (corrupt.jsonl) and a ledger
    path that is a directory (dir.jsonl)."""
    aws_manifest(tmp_path / "m.csv", 3)
    text = (tmp_path / "m.csv").read_text()
    (tmp_path / "typo.csv").write_text(
        text.replace("AWS Single-Account Access", "AWS Single-Acount Access")
    )
    header = {
        "type": "header",
        "version": 1,
        "manifest": "m.csv",
        "graph": "https://graph.example.test/v1.0",
        "tenant": "t",
        "salt": "00",
    }
    (tmp_path / "other.jsonl").write_bytes(orjson.dumps(header) + b"\n")
    info = MockInfo.from_json(quiet_mock.read_bytes())
    mine = {**header, "graph": info.graph_url + "/v1.0", "tenant": info.tenant_id}
    (tmp_path / "corrupt.jsonl").write_bytes(
        orjson.dumps(mine) + b"\nnot a record\n" + orjson.dumps({"type": "run"}) + b"\n"
    )
    (tmp_path / "dir.jsonl").mkdir()
    # the info file of a mock that has stopped: nothing listens on its port any more
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    raw = quiet_mock.read_text()
    live = info.graph_url.rsplit(":", 1)[1].split("/")[0]
    (tmp_path / "dead.json").write_text(raw.replace(f":{live}", f":{port}"))
    (tmp_path / "dead.json").chmod(0o600)
    (tmp_path / "mine.jsonl").write_bytes(orjson.dumps(mine) + b"\n")
    return tmp_path


CASES = {
    # name: (arguments, a phrase the message must hold)
    "run: missing manifest": (["run", "nope.csv", "--ledger", "l.jsonl"], "cannot read"),
    "run: misspelled template": (
        ["run", "typo.csv", "--ledger", "l.jsonl"],
        "no gallery application template",
    ),
    "run: ledger of another Graph": (
        ["run", "m.csv", "--ledger", "other.jsonl"],
        "records a run against graph",
    ),
    "run: corrupt ledger": (["run", "m.csv", "--ledger", "corrupt.jsonl"], "line 2 is corrupt"),
    "run: ledger is a directory": (["run", "m.csv", "--ledger", "dir.jsonl"], "is a directory"),
    "run: bad quota": (["run", "m.csv", "--ledger", "l.jsonl", "--write-quota", "x"], "quota"),
    "plan: missing manifest": (["plan", "nope.csv"], "cannot read"),
    "plan: misspelled template": (["plan", "typo.csv"], "no gallery application template"),
    "status: missing ledger": (["status", "nope.jsonl"], "no ledger"),
    "status: corrupt ledger": (["status", "corrupt.jsonl"], "line 2 is corrupt"),
    "status: ledger is a directory": (["status", "dir.jsonl"], "is a directory"),
    "monitor: missing ledger": (["monitor", "nope.jsonl"], "no ledger"),
    "monitor: ledger of another Graph": (["monitor", "other.jsonl"], "records a run against"),
    "cleanup: missing ledger": (["cleanup", "nope.jsonl", "--yes"], "no ledger"),
    "cleanup: ledger of another Graph": (
        ["cleanup", "other.jsonl", "--yes"],
        "records a run against",
    ),
    "cleanup: corrupt ledger": (["cleanup", "corrupt.jsonl", "--yes"], "line 2 is corrupt"),
    "export: existing output": (["export", "--out", "."], None),
    "run: stopped mock": (
        ["run", "m.csv", "--ledger", "l.jsonl", "--mock-info", "dead.json"],
        "mock-graph` still running?",
    ),
    "plan: stopped mock": (["plan", "m.csv", "--mock-info", "dead.json"], "connection refused"),
    "monitor: stopped mock": (
        ["monitor", "mine.jsonl", "--mock-info", "dead.json"],
        "cannot reach the token endpoint",
    ),
    "cleanup: stopped mock": (
        ["cleanup", "mine.jsonl", "--yes", "--mock-info", "dead.json"],
        "cannot reach the token endpoint",
    ),
}
NEEDS_GRAPH = ("run", "plan", "monitor", "cleanup", "export")


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gets_a_message_and_exit_2(work: Path, quiet_mock: Path, case: str) -> None:
    """The command exits 2 with a `bulkprov: error:` message naming the problem, prints no
    traceback, and leaves no ledger behind that was not there before."""
    args, phrase = CASES[case]
    if case.startswith("export"):
        (work / "manifest.json").write_text("{}")  # export refuses to overwrite it
    if args[0] in NEEDS_GRAPH and "--mock-info" not in args:
        args = [*args, "--mock-info", str(quiet_mock)]
    before = sorted(p.name for p in work.iterdir())
    t0 = time.monotonic()
    out = _cli(*args, cwd=work)
    assert time.monotonic() - t0 < 20  # a whole message within seconds, not a silent minute
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr + out.stdout
    assert out.stderr.startswith("bulkprov") and "bulkprov: error:" in out.stderr
    if phrase is not None:
        assert phrase in out.stderr, out.stderr
    assert sorted(p.name for p in work.iterdir()) == before  # nothing new, no lock file left
    for ledger in ("other.jsonl", "mine.jsonl"):  # refused ledgers are left untouched
        assert (work / ledger).read_bytes().count(b"\n") == 1


def test_unexpected_errors_name_the_bug_without_a_traceback() -> None:
    """An exception that is not bulkprov's own is reported in one line (type and place), exit
    1, and only -vv prints its traceback."""
    from bulkprov.cli import report_error

    def fail() -> None:
        {}["missing"]

    try:
        fail()
    except KeyError as exc:
        err = exc
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        assert report_error(ExceptionGroup("pool", [err])) == 1
    text = buf.getvalue()
    assert text.count("\n") == 1 and "internal error: KeyError at test_cli_errors.py" in text
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        report_error(err, verbose=2)
    assert "Traceback" in buf.getvalue()
