"""A ledger written by bulkprov 0.1.0 (commit f1b1c90: six instances done, one failed at
sync_template after its application was made) keeps working: status reads it, and a run
resumes it, skipping what is done and creating no application for the failed instance."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from bulkprov import ledger as ledger_mod
from bulkprov.commands import status_summary
from bulkprov.mockgraph import MockGraph

from .enginekit import run_engine, tenant_stats

pytestmark = pytest.mark.anyio

FIXTURE = Path(__file__).parent / "data" / "ledger-0.1.0"


def test_status_reads_a_0_1_0_ledger() -> None:
    """The 0.1.0 ledger replays to its instances, ids and errors."""
    summary = status_summary(ledger_mod.read(FIXTURE / "ledger.jsonl"))
    assert summary["statuses"] == {"done": 6, "failed": 1}
    failed = next(r for r in summary["rows"] if r["status"] == "failed")
    assert failed["key"] == "aws-nosecret" and failed["error"]["code"] == "MissingCredentials"
    assert failed["applicationId"] and failed["stepsDone"] == ["instantiate", "replicate"]


async def test_a_run_resumes_a_0_1_0_ledger(mock: MockGraph, tmp_path: Path) -> None:
    """Pointed at this Graph (its header rewritten to the mock's), the 0.1.0 ledger is
    accepted: the done instances are skipped, the failed one resumes after the steps it had
    done, and no application is created."""
    work = tmp_path / "w"
    shutil.copytree(FIXTURE, work)
    lines = (work / "ledger.jsonl").read_bytes().splitlines()
    header = orjson.loads(lines[0])
    assert mock.info is not None
    header.update(graph=mock.info.graph_url + "/v1.0", tenant=mock.info.tenant_id)
    (work / "ledger.jsonl").write_bytes(b"\n".join([orjson.dumps(header), *lines[1:]]) + b"\n")
    result = await run_engine(mock, work / "m.csv", work / "ledger.jsonl", monitor=False,
                              replication_deadline=5.0)
    assert result.skipped == 6
    assert tenant_stats(mock)["applications"] == 0
    replay = ledger_mod.read(work / "ledger.jsonl")
    assert replay.runs == 2
    records = [orjson.loads(x) for x in (work / "ledger.jsonl").read_bytes().splitlines()]
    resumed = [r for r in records[len(lines):] if r.get("key") == "aws-nosecret"
               and r.get("type") == "step" and r.get("event") == "start"]
    assert resumed and resumed[0]["step"] == "sync_template"
