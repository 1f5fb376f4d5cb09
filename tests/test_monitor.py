"""``bulkprov monitor``: job states, quarantines and provisioning failures of a ledger's jobs."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bulkprov import ledger as ledger_mod
from bulkprov.mockgraph import JobSettings, MockGraph, MockSettings
from bulkprov.monitor import exit_status, parse_reset_scope

from .enginekit import aws_manifest, run_engine
from .graphclient import PlainGraph
from .opskit import break_target, cli, monitor, wait_for_job

pytestmark = pytest.mark.anyio
AWS_INVALID = "AWSInvalidCredentials"


@pytest.fixture
def mock_settings() -> MockSettings:
    # incremental cycles every 30 Graph seconds, so a broken target shows within a second
    return MockSettings.quiet(time_scale=0.01, jobs=JobSettings(max_interval=30.0))


async def quarantined_run(
    mock: MockGraph, graph: PlainGraph, tmp_path: Path, n: int = 3
) -> tuple[Path, dict[str, str]]:
    """A finished run whose instance acct-00001 then fell into quarantine."""
    ledger = tmp_path / "l.jsonl"
    result = await run_engine(mock, aws_manifest(tmp_path / "m.csv", n), ledger)
    assert result.statuses["done"] == n, result.failures[:3]
    ids = ledger_mod.read(ledger).instances["acct-00001"].ids
    await break_target(graph, ids["servicePrincipalId"])
    await wait_for_job(
        graph, ids["servicePrincipalId"], ids["jobId"], lambda s: s.get("code") == "Quarantine"
    )
    return ledger, ids


class TestMonitor:
    async def test_reports_a_quarantine_with_its_reason(
        self, mock: MockGraph, graph: PlainGraph, tmp_path: Path
    ) -> None:
        """A job that fell into quarantine after the run shows with its reason, error code and
        latest provisioning failure; the others are Active; one report request served all."""
        ledger, _ids = await quarantined_run(mock, graph, tmp_path)
        before = mock.stats()["byRoute"].get("GET /auditLogs/provisioning", {})
        rows, m = await monitor(mock, ledger)
        assert [r["key"] for r in rows] == ["acct-00000", "acct-00001", "acct-00002"]
        bad = rows[1]
        assert bad["status"] == "Quarantine"
        assert bad["quarantine"]["reason"] == "EncounteredQuarantineException"
        assert bad["quarantine"]["code"] == AWS_INVALID
        assert bad["lastExecution"]["state"] == "Failed"
        assert AWS_INVALID in bad["errorCodes"]
        assert bad["logs"]["failures"] >= 1
        assert bad["logs"]["latest"][0]["errorCode"] == AWS_INVALID
        assert bad["lastSuccessfulExecution"]["state"] == "Succeeded"
        assert [r["status"] for r in (rows[0], rows[2])] == ["Active", "Active"]
        assert all(r["quarantine"] is None for r in (rows[0], rows[2]))
        assert exit_status(rows) == "quarantined"
        after = mock.stats()["byRoute"]["GET /auditLogs/provisioning"]
        assert sum(after.values()) - sum(before.values()) == m.log_queries == 1

    async def test_sweep_and_filter_agree(
        self, mock: MockGraph, graph: PlainGraph, tmp_path: Path
    ) -> None:
        """Naming the service principals in the $filter and sweeping every failure since the
        ledger began give each instance the same failures."""
        ledger, _ids = await quarantined_run(mock, graph, tmp_path)
        filtered, _ = await monitor(mock, ledger)
        swept, m = await monitor(mock, ledger, filter_ids=1)
        assert m.log_queries == 1
        assert [r["logs"]["failures"] for r in filtered] == [r["logs"]["failures"] for r in swept]
        assert swept[1]["logs"]["failures"] >= 1

    async def test_restart_takes_a_fixed_job_out_of_quarantine(
        self, mock: MockGraph, graph: PlainGraph, tmp_path: Path
    ) -> None:
        """Once the target accepts the credentials again, --restart restarts the quarantined
        job (and only it), records it in the ledger, and its next cycle succeeds."""
        ledger, ids = await quarantined_run(mock, graph, tmp_path)
        await break_target(graph, ids["servicePrincipalId"], broken=False)
        rows, _m = await monitor(mock, ledger, restart=True, logs=False)
        assert [r.get("restarted", False) for r in rows] == [False, True, False]
        assert rows[1]["statusBeforeRestart"] == "Quarantine"
        assert rows[1]["status"] == "Active" and rows[1]["quarantine"] is None
        restarts = mock.stats()["byRoute"][
            "POST /servicePrincipals/{id}/synchronization/jobs/{jobId}/restart"
        ]
        assert restarts == {"204": 1}
        done = [
            r
            for r in map(orjson.loads, ledger.read_bytes().splitlines())
            if r.get("step") == "restart" and r.get("event") == "done"
        ]
        assert [r["key"] for r in done] == ["acct-00001"]
        assert done[0]["data"]["resetScope"] == "Watermark, Escrows, QuarantineState"
        began = rows[1]["lastExecution"]["timeBegan"]
        await wait_for_job(
            graph,
            ids["servicePrincipalId"],
            ids["jobId"],
            lambda s: (s.get("lastExecution") or {}).get("timeBegan") != began,
        )
        rows, _m = await monitor(mock, ledger, logs=False)
        assert rows[1]["status"] == "Active"
        assert rows[1]["lastExecution"]["state"] == "Succeeded"
        assert exit_status(rows) == "ok"

    async def test_restart_of_a_still_broken_target_quarantines_again(
        self, mock: MockGraph, graph: PlainGraph, tmp_path: Path
    ) -> None:
        """Restarting without fixing the credentials only postpones the quarantine."""
        ledger, ids = await quarantined_run(mock, graph, tmp_path, n=2)
        rows, _m = await monitor(mock, ledger, restart=True, logs=False)
        assert rows[1]["restarted"]
        await wait_for_job(
            graph, ids["servicePrincipalId"], ids["jobId"], lambda s: s.get("code") == "Quarantine"
        )
        rows, _m = await monitor(mock, ledger, logs=False)
        assert exit_status(rows) == "quarantined"

    async def test_a_deleted_job_is_reported_missing(
        self, mock: MockGraph, graph: PlainGraph, tmp_path: Path
    ) -> None:
        """A job deleted behind the ledger's back shows as missing, and fails the command."""
        ledger = tmp_path / "l.jsonl"
        await run_engine(
            mock, aws_manifest(tmp_path / "m.csv", 2, start=False), ledger, monitor=False
        )
        ids = ledger_mod.read(ledger).instances["acct-00000"].ids
        r = await graph.delete(
            f"/servicePrincipals/{ids['servicePrincipalId']}/synchronization/jobs/{ids['jobId']}"
        )
        assert r.status == 204
        rows, _m = await monitor(mock, ledger)
        assert rows[0]["status"] == "missing" and "404" in rows[0]["error"]
        assert rows[1]["status"] == "Paused"
        assert exit_status(rows) == "failed"


class TestCommand:
    async def test_json_lines_and_exit_code(
        self, mock: MockGraph, graph: PlainGraph, tmp_path: Path
    ) -> None:
        """``monitor --json`` prints one JSON object per instance and exits 3 while a job is
        quarantined; the table names the reason; a foreign tenant's ledger is refused."""
        ledger, ids = await quarantined_run(mock, graph, tmp_path)
        code, out, err = await cli(mock, tmp_path, "monitor", str(ledger), "--json")
        assert code == 3, err
        rows = [orjson.loads(line) for line in out.splitlines()]
        assert len(rows) == 3
        assert rows[1]["key"] == "acct-00001" and rows[1]["jobId"] == ids["jobId"]
        assert rows[1]["quarantine"]["code"] == AWS_INVALID
        code, out, err = await cli(mock, tmp_path, "monitor", str(ledger))
        assert code == 3, err
        assert "EncounteredQuarantineException" in out and "acct-00001" in out
        assert "acct-00000" not in out  # healthy jobs only with --all

        lines = ledger.read_bytes().splitlines()
        header = orjson.loads(lines[0])
        header["tenant"] = "00000000-0000-0000-0000-000000000001"
        (tmp_path / "foreign.jsonl").write_bytes(
            b"\n".join([orjson.dumps(header), *lines[1:]]) + b"\n"
        )
        code, out, err = await cli(mock, tmp_path, "monitor", str(tmp_path / "foreign.jsonl"))
        assert code == 2 and "records a run against tenant" in err and out == ""


def test_reset_scope_is_checked() -> None:
    """--reset-scope takes Graph's synchronizationJobRestartScope flags and nothing else."""
    assert parse_reset_scope("Watermark,QuarantineState") == "Watermark, QuarantineState"
    with pytest.raises(ValueError, match="unknown reset scope Everything"):
        parse_reset_scope("Watermark, Everything")
