"""The engine as a user runs it: separate processes, killed and interrupted, secrets canaried."""

from __future__ import annotations

import os
import random
import signal
import ssl
import string
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from bulkprov import ledger as ledger_mod
from bulkprov.mockgraph import MockInfo

from .enginekit import AWS
from .mockproc import wait_for_info


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "bulkprov.cli", *args]


@pytest.fixture
def mock_process(tmp_path: Path) -> Iterator[MockInfo]:
    """A `bulkprov mock-graph` process with replication delays and instantiate faults."""
    info_file = tmp_path / "mock.json"
    proc = subprocess.Popen(
        _cmd(
            "mock-graph",
            "--port",
            "0",
            "--info-file",
            str(info_file),
            "--time-scale",
            "0.02",
            "--instantiate-404-rate",
            "0.1",
            "--fault-rate",
            "0.01",
            "--replication-max",
            "8",
            "--state-dir",
            str(tmp_path / "mockstate"),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield wait_for_info(info_file, proc)
    proc.terminate()
    proc.wait(timeout=10)


def mock_stats(info: MockInfo) -> dict[str, Any]:
    ctx = ssl.create_default_context(cafile=info.ca_file)
    with urllib.request.urlopen(f"{info.graph_url}/_mock/stats", context=ctx) as resp:
        return dict(orjson.loads(resp.read()))


def _manifest(path: Path, n: int) -> Path:
    lines = ["key,displayName,template,cred.ClientSecret,cred.SecretToken"]
    lines += [
        f"k{i:03d},AWS kill {i:03d},{AWS},env:CANARY_KEY_ID,env:CANARY_SECRET" for i in range(n)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _canaries() -> dict[str, str]:
    rng = random.SystemRandom()
    key_id = "AKIA" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16))
    secret = "".join(rng.choice(string.ascii_letters + string.digits + "/+") for _ in range(40))
    return {"CANARY_KEY_ID": key_id, "CANARY_SECRET": secret}


def _run(
    info_file: Path,
    manifest: Path,
    ledger: Path,
    env: dict[str, str],
    log: Path,
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        _cmd(
            "run",
            str(manifest),
            "--mock-info",
            str(info_file),
            "--ledger",
            str(ledger),
            "--log-file",
            str(log),
            "-v",
            "--monitor-deadline",
            "2000",
        ),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _records(ledger: Path) -> int:
    """How many records (lines) the ledger holds so far."""
    return ledger.read_bytes().count(b"\n") if ledger.exists() else 0


def _applications(ledger: Path) -> int:
    """How many instances the ledger knows an application of."""
    if not ledger.exists():
        return 0
    return sum(1 for s in ledger_mod.read(ledger).instances.values() if s.ids.get("applicationId"))


def _wait_until(
    cond: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, timeout: float = 120.0
) -> None:
    """Poll until ``cond()`` holds or ``proc`` exits (the caller checks how it ended)."""
    deadline = time.monotonic() + timeout
    while not cond() and proc.poll() is None:
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


@pytest.mark.slow
class TestCrashSafety:
    def test_sigkill_at_random_points_then_resume(
        self, mock_process: MockInfo, tmp_path: Path
    ) -> None:
        """Killed with SIGKILL at several random moments and re-run with the same ledger, a
        run ends with every instance done exactly once: one application per instance, no
        orphan, no duplicate, and the ledger agrees with the mock."""
        info_file = tmp_path / "mock.json"
        n = 60
        manifest = _manifest(tmp_path / "m.csv", n)
        ledger = tmp_path / "run.jsonl"
        env = {**os.environ, **_canaries()}
        rng = random.Random(20261122)
        outputs: list[bytes] = []
        for _ in range(4):
            before = _records(ledger)
            proc = _run(info_file, manifest, ledger, env, tmp_path / "log.jsonl")

            # kill at a random point of the run itself: once it has written a random number of
            # ledger records, however slow the start-up or the machine is
            def grown(target: int = before + rng.randint(3, 120)) -> bool:
                return _records(ledger) >= target

            _wait_until(grown, proc, "the run wrote no records")
            proc.send_signal(signal.SIGKILL)
            out, err = proc.communicate(timeout=30)
            outputs += [out, err]
        proc = _run(info_file, manifest, ledger, env, tmp_path / "log.jsonl")
        out, err = proc.communicate(timeout=300)
        outputs += [out, err]
        assert proc.returncode == 0, err.decode()[-2000:]
        stats = mock_stats(mock_process)
        tenant = stats["tenants"][mock_process.tenant_id]
        assert tenant["applications"] == n
        assert tenant["duplicates"] == 0
        assert tenant["orphanApplications"] == 0
        assert tenant["orphanServicePrincipals"] == 0
        replay = ledger_mod.read(ledger)
        assert replay.runs == 5
        assert {s.status for s in replay.instances.values()} == {"done"}
        assert len({s.ids["applicationId"] for s in replay.instances.values()}) == n
        # secrets: nothing any of the five runs wrote holds a canary or a token
        written = b"".join(outputs) + ledger.read_bytes() + (tmp_path / "log.jsonl").read_bytes()
        for value in env["CANARY_KEY_ID"], env["CANARY_SECRET"], mock_process.client_secret:
            assert value.encode() not in written
        assert b"eyJ0eXAi" not in written  # no bearer token (a JWT header) either
        assert (ledger.stat().st_mode & 0o777) == 0o600
        assert ((tmp_path / "log.jsonl").stat().st_mode & 0o777) == 0o600

    def test_sigint_drains_and_resume_completes(
        self, mock_process: MockInfo, tmp_path: Path
    ) -> None:
        """SIGINT drains the run (exit 130, a consistent ledger), and a re-run finishes it."""
        info_file = tmp_path / "mock.json"
        manifest = _manifest(tmp_path / "m.csv", 40)
        ledger = tmp_path / "run.jsonl"
        env = {**os.environ, **_canaries()}
        proc = _run(info_file, manifest, ledger, env, tmp_path / "log.jsonl")
        # interrupt the run midway: once 5 of its 40 instances have their application
        _wait_until(lambda: _applications(ledger) >= 5, proc, "the run created nothing")
        assert proc.poll() is None, "the run ended before it was interrupted"
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err.decode()[-2000:]
        assert b"draining" in err
        data = ledger.read_bytes()
        assert data.endswith(b"\n")
        interrupted = ledger_mod.read(ledger)
        assert not interrupted.torn
        proc = _run(info_file, manifest, ledger, env, tmp_path / "log.jsonl")
        _out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
        tenant = mock_stats(mock_process)["tenants"][mock_process.tenant_id]
        assert tenant["applications"] == 40 and tenant["duplicates"] == 0


def test_secret_never_in_argv_help() -> None:
    """The CLI takes the client secret from a variable or a file, never from an argument."""
    out = subprocess.run(_cmd("run", "--help"), capture_output=True, text=True, check=True)
    assert "--client-secret-env" in out.stdout and "--client-secret-file" in out.stdout
    assert "--client-secret " not in out.stdout and "--client-secret=" not in out.stdout


@pytest.mark.slow
def test_readme_main_command_works_on_a_fresh_checkout(tmp_path: Path) -> None:
    """`bulkprov run manifests/aws-accounts.csv --mock`, the README's main command, onboards all
    300 example instances with no credentials or setup, and leaves a ledger under runs/."""
    repo = Path(__file__).resolve().parents[1]
    manifest = repo / "manifests" / "aws-accounts.csv"
    proc = subprocess.run(
        _cmd("run", str(manifest), "--mock"),
        cwd=tmp_path,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    ledgers = list((tmp_path / "runs").glob("aws-accounts-mock-*.jsonl"))
    assert len(ledgers) == 1
    replay = ledger_mod.read(ledgers[0])
    assert len(replay.instances) == 300
    assert {s.status for s in replay.instances.values()} == {"done"}
