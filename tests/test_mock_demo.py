"""The ``--mock`` demo's life cycle: the embedded mock keeps its tenant beside the ledger, so
that status, monitor, cleanup and a second run find what the first run set up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bulkprov import ledger as ledger_mod
from bulkprov.cli import main
from bulkprov.mockgraph import MockGraph, MockSettings
from bulkprov.mockgraph.persist import KeepError, beside

from .enginekit import KEY_ID, SECRET_KEY, aws_manifest, run_engine
from .graphclient import PlainGraph
from .opskit import cli, wait_for_job

SCALE = "0.005"
AWS_ID = "8b1025e4-1dd2-430b-a150-2ef79cd700f5"


def bulkprov(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``bulkprov ARGS`` in this process (its embedded mock serves real HTTPS on loopback)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def kept_stats(directory: Path) -> dict[str, Any]:
    """The kept tenant's counts, as a mock restored from ``directory`` reports them."""

    async def read() -> dict[str, Any]:
        async with MockGraph(MockSettings.quiet(time_scale=0.01), keep=directory) as m:
            assert m.info is not None
            return dict(m.stats()["tenants"][m.info.tenant_id])

    return anyio.run(read)


class TestLifeCycle:
    def test_run_status_monitor_rerun_cleanup_on_one_demo_tenant(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """After `run --mock --ledger L`, `status L` reads it without a Graph, `monitor --mock L`
        sees its jobs, a second `run --mock` skips every instance and creates nothing, and
        `cleanup --mock L --yes` empties the kept tenant."""
        manifest = aws_manifest(tmp_path / "m.csv", 5)
        ledger = tmp_path / "runs" / "demo.jsonl"
        code, _out, err = bulkprov(
            capsys, "run", str(manifest), "--mock", "--ledger", str(ledger), "--time-scale", SCALE
        )
        assert code == 0, err
        kept = tmp_path / "runs" / "demo.mock"
        assert beside(ledger) == kept
        assert f"tenant kept in {kept}" in err.replace("\n", "")
        assert kept.stat().st_mode & 0o777 == 0o700
        assert {p.stat().st_mode & 0o777 for p in kept.rglob("*") if p.is_file()} == {0o600}
        header = ledger_mod.read(ledger).header
        assert header is not None and header.graph == "mock:embedded"

        code, out, _err = bulkprov(capsys, "status", str(ledger), "--json")
        assert code == 0 and orjson.loads(out)["statuses"] == {"done": 5}

        code, out, err = bulkprov(
            capsys, "monitor", "--mock", str(ledger), "--json", "--time-scale", SCALE
        )
        assert code == 0, err
        rows = [orjson.loads(line) for line in out.splitlines()]
        assert sorted(r["key"] for r in rows) == [f"acct-{i:05d}" for i in range(5)]
        assert {r["status"] for r in rows} == {"Active"}

        before = kept_stats(kept)
        assert before["applications"] == 5 and before["jobs"] == 5
        code, _out, err = bulkprov(
            capsys, "run", str(manifest), "--mock", "--ledger", str(ledger), "--time-scale", SCALE
        )
        assert code == 0, err
        after = kept_stats(kept)
        assert after["created"] == before["created"]
        assert after["applications"] == 5 and after["duplicates"] == 0

        code, _out, err = bulkprov(
            capsys, "cleanup", "--mock", str(ledger), "--yes", "--time-scale", SCALE
        )
        assert code == 0, err
        empty = kept_stats(kept)
        assert (empty["applications"], empty["servicePrincipals"], empty["jobs"]) == (0, 0, 0)
        assert empty["deletedApplications"] == 5

    def test_a_deleted_demo_tenant_is_one_line_of_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """With the kept tenant deleted, monitor, cleanup and run say so in one line and exit 2,
        and the ledger is left as it was."""
        manifest = aws_manifest(tmp_path / "m.csv", 1)
        ledger = tmp_path / "demo.jsonl"
        code, _out, err = bulkprov(
            capsys,
            "run",
            str(manifest),
            "--mock",
            "--ledger",
            str(ledger),
            "--time-scale",
            SCALE,
            "--no-monitor",
        )
        assert code == 0, err
        for p in sorted(beside(ledger).rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
        beside(ledger).rmdir()
        written = ledger.read_bytes()
        for args in (
            ["monitor", "--mock", str(ledger)],
            ["cleanup", "--mock", str(ledger), "--yes"],
            ["run", str(manifest), "--mock", "--ledger", str(ledger)],
        ):
            code, _out, err = bulkprov(capsys, *args)
            assert code == 2
            assert err.count("\n") == 1 and "Traceback" not in err
            assert f"{beside(ledger)} is missing" in err and "start a new demo" in err
        assert ledger.read_bytes() == written

    def test_one_demo_tenant_is_served_by_one_command_at_a_time(self, tmp_path: Path) -> None:
        """A second mock on a kept tenant that one is serving is refused, not forked."""
        first = MockGraph(MockSettings.quiet(), keep=tmp_path / "t.mock", create=True)
        try:
            with pytest.raises(KeepError, match="in use by another bulkprov command"):
                MockGraph(MockSettings.quiet(), keep=tmp_path / "t.mock")
        finally:
            assert first.keeper is not None
            first.keeper.release()


async def _configure(graph: PlainGraph, name: str, key_id: str) -> tuple[str, str]:
    """An AWS app with a job and saved (not validated) credentials: (service principal, job)."""
    r = await graph.post(f"/applicationTemplates/{AWS_ID}/instantiate", {"displayName": name})
    assert r.status == 201, r.body
    sp = r.body["servicePrincipal"]["id"]
    r = await graph.post(f"/servicePrincipals/{sp}/synchronization/jobs", {"templateId": "aws"})
    assert r.status == 201, r.body
    job = str(r.body["id"])
    creds = [{"key": "ClientSecret", "value": key_id}, {"key": "SecretToken", "value": SECRET_KEY}]
    r = await graph.put(f"/servicePrincipals/{sp}/synchronization/secrets", {"value": creds})
    assert r.status == 204, r.body
    return sp, job


@pytest.mark.anyio
async def test_restored_credentials_are_judged_as_before_and_no_value_is_kept(
    tmp_path: Path,
) -> None:
    """A kept tenant holds no credential value, yet after a restore a job started on good saved
    credentials succeeds and one on bad ones quarantines; Graph time goes on from the save."""
    kept = tmp_path / "t.mock"
    settings = MockSettings.quiet(time_scale=0.005)
    async with MockGraph(settings, keep=kept, create=True) as first:
        assert first.info is not None
        async with PlainGraph(first.info) as graph:
            good = await _configure(graph, "AWS good", KEY_ID)
            bad = await _configure(graph, "AWS bad", "NOT-AN-ACCESS-KEY-ID")
        stopped, wall0 = first.clock.now(), first.clock.wall0
    files = b"".join(p.read_bytes() for p in kept.rglob("*") if p.is_file())
    for value in (KEY_ID, SECRET_KEY, first.info.client_secret):
        assert value.encode() not in files
    async with MockGraph(settings, keep=kept) as second:
        assert second.info is not None
        assert second.clock.now() >= stopped and second.clock.wall0 == wall0
        async with PlainGraph(second.info) as graph:
            r = await graph.get(f"/servicePrincipals/{good[0]}/synchronization/secrets")
            assert sorted(s["key"] for s in r.body["value"]) == ["ClientSecret", "SecretToken"]
            for sp, job in (good, bad):
                r = await graph.post(f"/servicePrincipals/{sp}/synchronization/jobs/{job}/start")
                assert r.status == 204, r.body
            await wait_for_job(
                graph, *good, lambda s: (s.get("lastExecution") or {}).get("state") == "Succeeded"
            )
            await wait_for_job(graph, *bad, lambda s: s.get("code") == "Quarantine")
            r = await graph.get(f"/servicePrincipals/{bad[0]}/synchronization/jobs/{bad[1]}")
            ended = r.body["status"]["lastExecution"]["timeEnded"]
            assert ended > first.clock.iso(stopped)


def test_a_killed_run_resumes_on_its_kept_tenant_without_duplicates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A `run --mock` killed with SIGKILL mid-run is resumed by the same command: every
    application the ledger heard of is still in the kept tenant (it was journaled before
    Graph answered), and the resumed run ends with one application per instance."""
    n = 40
    manifest = aws_manifest(tmp_path / "m.csv", n)
    ledger = tmp_path / "demo.jsonl"
    args = ["run", str(manifest), "--mock", "--ledger", str(ledger), "--time-scale", "0.01"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bulkprov.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    done = b'"step":"instantiate","event":"done"'
    while not (ledger.exists() and ledger.read_bytes().count(done) >= 5):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    journal = beside(ledger) / "journal.jsonl"
    assert journal.stat().st_size > 0  # the kill came before the next snapshot
    heard = {
        s.ids["applicationId"]
        for s in ledger_mod.read(ledger).instances.values()
        if s.ids.get("applicationId")
    }
    code, _out, err = bulkprov(capsys, *args)
    assert code == 0, err
    replay = ledger_mod.read(ledger)
    assert {s.status for s in replay.instances.values()} == {"done"}
    ids = {s.ids["applicationId"] for s in replay.instances.values()}
    assert heard <= ids and len(ids) == n
    stats = kept_stats(beside(ledger))
    assert stats["applications"] == n and stats["duplicates"] == 0


@pytest.mark.anyio
async def test_ledgers_of_a_running_mock_are_checked_as_before(
    mock: MockGraph, tmp_path: Path
) -> None:
    """A ledger that records a Graph URL (as every release wrote them) still works with
    `--mock-info`, and `--mock` refuses it in one line, naming the Graph it records."""
    manifest = aws_manifest(tmp_path / "m.csv", 2)
    ledger = tmp_path / "run.jsonl"
    await run_engine(mock, manifest, ledger, monitor=False)
    header = ledger_mod.read(ledger).header
    assert header is not None and mock.info is not None
    assert header.graph == f"{mock.info.graph_url}/v1.0"
    code, out, err = await cli(mock, tmp_path, "monitor", str(ledger), "--json")
    assert code == 0, err
    assert len(out.splitlines()) == 2
    proc = await anyio.run_process(
        [sys.executable, "-m", "bulkprov.cli", "monitor", "--mock", str(ledger)],
        check=False,
        env={**os.environ, "COLUMNS": "400"},
    )
    err = proc.stderr.decode()
    assert proc.returncode == 2 and err.count("\n") == 1
    assert f"records a run against {header.graph}" in err
