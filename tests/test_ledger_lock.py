"""One writer per ledger: the OS lock that refuses a second writing command, and ledgers that
cannot brick themselves (a garbage last line, a ledger that is not a file, one deleted while
written)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import orjson
import pytest

from bulkprov import ledger as ledger_mod
from bulkprov.errors import LedgerError
from bulkprov.ledger import Ledger, LedgerBusy, LedgerLock
from bulkprov.mockgraph import MockInfo

from .test_engine_process import _canaries, _cmd, _manifest, mock_stats
from .test_engine_process import mock_process as mock_process  # the fixture

GRAPH = "https://graph.example.test/v1.0"
TENANT = "11111111-2222-3333-4444-555555555555"


def _open(path: Path, command: str = "run") -> Ledger:
    led = Ledger(path)
    led.open(manifest="m.csv", graph=GRAPH, tenant=TENANT, command=command)
    return led


class TestLock:
    def test_second_writer_is_refused_naming_the_holder(self, tmp_path: Path) -> None:
        """While one Ledger holds the lock, opening the same ledger again is refused with the
        holder's pid and command, and the refused opener writes nothing."""
        path = tmp_path / "l.jsonl"
        first = _open(path)
        before = path.read_bytes()
        busy = rf"in use by another bulkprov run \(pid {os.getpid()}"
        with pytest.raises(LedgerBusy, match=busy):
            _open(path, command="cleanup")
        assert path.read_bytes() == before
        first.close()
        _open(path, command="cleanup").close()  # free again once the holder closed
        assert [
            r.get("command")
            for r in map(orjson.loads, path.read_bytes().splitlines())
            if r["type"] == "run"
        ] == [None, "cleanup"]

    def test_lock_file_is_removed_on_release_and_private(self, tmp_path: Path) -> None:
        """The lock file exists (mode 600, naming its holder) while held and is gone after."""
        path = tmp_path / "l.jsonl"
        lock = LedgerLock(path, "monitor")
        lock.acquire()
        assert (tmp_path / "l.jsonl.lock").stat().st_mode & 0o777 == 0o600
        assert orjson.loads((tmp_path / "l.jsonl.lock").read_bytes())["command"] == "monitor"
        lock.release()
        lock.release()  # idempotent
        assert not (tmp_path / "l.jsonl.lock").exists()

    def test_refused_new_ledger_leaves_nothing(self, tmp_path: Path) -> None:
        """A run refused at prepare time (the ledger is busy) creates no ledger and no
        directory for it."""
        holder = LedgerLock(tmp_path / "runs" / "l.jsonl", "run")
        (tmp_path / "runs").mkdir()
        holder.acquire()
        led = Ledger(tmp_path / "runs" / "l.jsonl")
        with pytest.raises(LedgerBusy):
            led.prepare(manifest="m.csv", graph=GRAPH, tenant=TENANT)
        assert not (tmp_path / "runs" / "l.jsonl").exists()
        holder.release()
        led = Ledger(tmp_path / "new" / "l.jsonl")
        led.prepare(manifest="m.csv", graph=GRAPH, tenant=TENANT)
        led.close()  # prepared, never begun: the directory it made is removed
        assert not (tmp_path / "new").exists()


class TestNoBricking:
    def test_garbage_last_line_is_cut_and_the_ledger_stays_usable(self, tmp_path: Path) -> None:
        """A whole last line that is not a record (`printf 'GARBAGE\\n' >> L`) is cut when
        the ledger is opened for writing, so the records after it keep the ledger readable."""
        path = tmp_path / "l.jsonl"
        led = _open(path)
        led.step("a", "instantiate", "done", ids={"applicationId": "app-1"})
        led.close()
        whole = path.read_bytes()
        with path.open("ab") as fh:
            fh.write(b"GARBAGE\n")
        assert ledger_mod.read(path).torn
        led = _open(path)
        led.step("a", "job", "done", ids={"jobId": "j1"})
        led.close()
        assert path.read_bytes().startswith(whole) and b"GARBAGE" not in path.read_bytes()
        replay = ledger_mod.read(path)
        assert not replay.torn and replay.instances["a"].done == {"instantiate", "job"}

    @pytest.mark.parametrize("kind", ["directory", "fifo"])
    def test_a_ledger_that_is_no_file_is_refused(self, tmp_path: Path, kind: str) -> None:
        """A ledger path that is a directory or a FIFO gets a LedgerError, not a hang."""
        path = tmp_path / "l.jsonl"
        if kind == "directory":
            path.mkdir()
        else:
            os.mkfifo(path)
        with pytest.raises(LedgerError, match="directory" if kind == "directory" else "regular"):
            ledger_mod.read(path)
        with pytest.raises(LedgerError):
            _open(path)

    def test_a_ledger_deleted_while_written_stops_the_writer(self, tmp_path: Path) -> None:
        """Once the ledger file is deleted under an open Ledger, the next append raises,
        saying the ledger was deleted, instead of writing into a file nobody can read."""
        path = tmp_path / "runs" / "l.jsonl"
        led = _open(path)
        led.step("a", "instantiate", "start")
        path.unlink()
        with pytest.raises(LedgerError, match="was deleted"):
            led.step("a", "instantiate", "done")


def _wait_for(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_two_runs_on_one_ledger_one_is_refused_and_a_killed_holder_frees_it(
    mock_process: MockInfo, tmp_path: Path
) -> None:
    """Two `bulkprov run` processes on one ledger: the second exits 2 at once naming the
    first's pid and writes nothing; after the first is killed with SIGKILL the lock is free,
    and a third run finishes the work with one application per instance."""
    info_file = tmp_path / "mock.json"
    n = 40
    manifest = _manifest(tmp_path / "m.csv", n)
    ledger = tmp_path / "runs" / "run.jsonl"
    env = {**os.environ, **_canaries()}
    run = [
        *_cmd(
            "run",
            str(manifest),
            "--mock-info",
            str(info_file),
            "--ledger",
            str(ledger),
            "--monitor-deadline",
            "2000",
        )
    ]
    first = subprocess.Popen(run, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(
            lambda: ledger.exists() and ledger_mod.read(ledger).runs == 1,
            60,
            "the first run did not start",
        )
        # the first run, holding the lock, is paused: it cannot finish (and let go of the
        # lock) while the second starts up, however fast it is
        first.send_signal(signal.SIGSTOP)
        before = ledger.read_bytes()
        t0 = time.monotonic()
        second = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60)
        took = time.monotonic() - t0
        assert second.returncode == 2, second.stderr
        assert f"in use by another bulkprov run (pid {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr and took < 20
        assert ledger_mod.read(ledger).runs == 1  # the second wrote no record
        assert ledger.read_bytes()[: len(before)] == before
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
    third = subprocess.run(run, env=env, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr[-2000:]
    tenant = mock_stats(mock_process)["tenants"][mock_process.tenant_id]
    assert tenant["applications"] == n and tenant["duplicates"] == 0
    replay = ledger_mod.read(ledger)
    assert replay.runs == 2 and {s.status for s in replay.instances.values()} == {"done"}
    assert not (tmp_path / "runs" / "run.jsonl.lock").exists()


def test_cleanup_while_a_run_holds_the_ledger_is_refused_at_once(
    mock_process: MockInfo, tmp_path: Path
) -> None:
    """`bulkprov cleanup --yes` on a ledger a run is writing exits 2 before deleting anything."""
    info_file = tmp_path / "mock.json"
    ledger = tmp_path / "run.jsonl"
    lock = LedgerLock(ledger, "run")
    led = Ledger(ledger)
    led.open(
        manifest="m.csv", graph=mock_process.graph_url + "/v1.0", tenant=mock_process.tenant_id
    )
    led.close()
    lock.acquire()
    try:
        out = subprocess.run(
            [*_cmd("cleanup", str(ledger), "--yes", "--mock-info", str(info_file))],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        lock.release()
    assert out.returncode == 2, out.stderr
    assert f"pid {os.getpid()}" in out.stderr and "Traceback" not in out.stderr
    assert ledger_mod.read(ledger).commands == {}
