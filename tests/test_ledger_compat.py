"""Ledgers written by earlier releases keep working: status reads them, a run resumes them.

- ``ledger-0.1.0`` (commit f1b1c90): six instances done, one failed at sync_template after its
  application was made.
- ``ledger-0.2.0`` (commit 6435e34, format version 1; see its README.txt): two runs, instances
  done, quarantined, failed, interrupted, one removed by a cleanup, a monitor restart.

Each replays to exactly what the release that wrote it made of it (``replay.json`` beside it,
written by that release), and a run resumes it, skipping what is done.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from bulkprov import ledger as ledger_mod
from bulkprov.commands.status import status_summary
from bulkprov.mockgraph import FaultSettings, MockGraph, MockSettings

from .enginekit import run_engine, tenant_stats

pytestmark = pytest.mark.anyio

DATA = Path(__file__).parent / "data"
FIXTURE = DATA / "ledger-0.1.0"
FIXTURE_2 = DATA / "ledger-0.2.0"


@pytest.fixture
def mock_settings() -> MockSettings:
    # another seed than the mock that wrote the fixtures: the applications this mock makes
    # must not take the ids the fixtures' instances hold
    return MockSettings.quiet(time_scale=0.01, faults=FaultSettings(seed=20))


def replay_dump(replay: ledger_mod.Replay) -> dict[str, Any]:
    """All a replay holds, as JSON: what ``replay.json`` of a fixture records."""
    return {
        "header": replay.header.to_json() if replay.header else None,
        "runs": replay.runs,
        "commands": replay.commands,
        "torn": replay.torn,
        "instances": {
            k: {
                "ids": st.ids,
                "done": sorted(st.done),
                "instantiateAttempts": st.instantiate_attempts,
                "instantiatePending": st.instantiate_pending,
                "status": st.status,
                "final": st.final,
                "errors": st.errors,
                "origin": st.origin,
                "jobAdopted": st.job_adopted,
                "attempt": st.attempt,
                "removed": sorted(list(r) for r in st.removed),
                "displayName": st.display_name,
            }
            for k, st in replay.instances.items()
        },
    }


@pytest.mark.parametrize("fixture", [FIXTURE, FIXTURE_2], ids=["0.1.0", "0.2.0"])
def test_a_fixture_replays_as_the_release_that_wrote_it(fixture: Path) -> None:
    """Every instance's ids, steps, attempts, status and final record come out as they did."""
    got = orjson.loads(orjson.dumps(replay_dump(ledger_mod.read(fixture / "ledger.jsonl"))))
    assert got == orjson.loads((fixture / "replay.json").read_bytes())


def test_status_reads_a_0_1_0_ledger() -> None:
    """The 0.1.0 ledger replays to its instances, ids and errors."""
    summary = status_summary(ledger_mod.read(FIXTURE / "ledger.jsonl"))
    assert summary["statuses"] == {"done": 6, "failed": 1}
    failed = next(r for r in summary["rows"] if r["status"] == "failed")
    assert failed["key"] == "aws-nosecret" and failed["error"]["code"] == "MissingCredentials"
    assert failed["applicationId"] and failed["stepsDone"] == ["instantiate", "replicate"]


def test_status_reads_a_0_2_0_ledger() -> None:
    """The 0.2.0 ledger replays to its runs, the other commands that wrote it, and each
    instance's status, job status, error and removed objects."""
    summary = status_summary(ledger_mod.read(FIXTURE_2 / "ledger.jsonl"))
    assert summary["runs"] == 2 and summary["commands"] == {"cleanup": 1, "monitor": 1}
    assert summary["statuses"] == {
        "done": 2,
        "quarantined": 1,
        "failed": 1,
        "interrupted": 1,
        "removed": 1,
    }
    assert summary["header"]["version"] == 1 and "salt" not in summary["header"]
    rows = {r["key"]: r for r in summary["rows"]}
    assert rows["quar"]["jobStatus"] == "Quarantine" and rows["quar"]["quarantine"]
    assert rows["ok-1"]["jobStatus"] == "Active" and rows["ok-1"]["error"] is None
    assert rows["nosecret"]["error"]["code"] == "MissingCredentials"
    assert rows["late"]["stepsDone"] == ["instantiate", "replicate"]
    assert rows["late"]["applicationId"] and rows["late"]["jobId"] is None
    assert rows["nostart"]["removed"] == ["application", "job", "servicePrincipal"]
    assert rows["nostart"]["applicationId"] is None and rows["nostart"]["stepsDone"] == []


def _pointed_at(mock: MockGraph, fixture: Path, work: Path) -> list[bytes]:
    """A copy of ``fixture`` in ``work``, its header rewritten to this mock's Graph and
    tenant; the ledger's lines as they were."""
    shutil.copytree(fixture, work)
    lines = (work / "ledger.jsonl").read_bytes().splitlines()
    header = orjson.loads(lines[0])
    assert mock.info is not None
    header.update(graph=mock.info.graph_url + "/v1.0", tenant=mock.info.tenant_id)
    (work / "ledger.jsonl").write_bytes(b"\n".join([orjson.dumps(header), *lines[1:]]) + b"\n")
    return lines


def _resumed(work: Path, old: int) -> list[dict[str, Any]]:
    records = [orjson.loads(x) for x in (work / "ledger.jsonl").read_bytes().splitlines()]
    return records[old:]


async def test_a_run_resumes_a_0_1_0_ledger(mock: MockGraph, tmp_path: Path) -> None:
    """Pointed at this Graph (its header rewritten to the mock's), the 0.1.0 ledger is
    accepted: the done instances are skipped, the failed one resumes after the steps it had
    done, and no application is created."""
    work = tmp_path / "w"
    lines = _pointed_at(mock, FIXTURE, work)
    result = await run_engine(
        mock, work / "m.csv", work / "ledger.jsonl", monitor=False, replication_deadline=5.0
    )
    assert result.skipped == 6
    assert tenant_stats(mock)["applications"] == 0
    replay = ledger_mod.read(work / "ledger.jsonl")
    assert replay.runs == 2
    resumed = [
        r
        for r in _resumed(work, len(lines))
        if r.get("key") == "aws-nosecret" and r.get("type") == "step" and r.get("event") == "start"
    ]
    assert resumed and resumed[0]["step"] == "sync_template"


async def test_a_run_resumes_a_0_2_0_ledger(mock: MockGraph, tmp_path: Path) -> None:
    """The 0.2.0 ledger is accepted: done and quarantined instances are skipped, the
    interrupted one resumes after replicate (no new application for it), the removed one is
    set up anew (the one application made), the failed one is tried again."""
    work = tmp_path / "w"
    lines = _pointed_at(mock, FIXTURE_2, work)
    result = await run_engine(
        mock, work / "m.csv", work / "ledger.jsonl", monitor=False, replication_deadline=5.0
    )
    assert result.skipped == 3
    assert dict(result.skipped_statuses) == {"done": 2, "quarantined": 1}
    assert tenant_stats(mock)["applications"] == 1
    replay = ledger_mod.read(work / "ledger.jsonl")
    assert replay.runs == 3 and replay.commands == {"cleanup": 1, "monitor": 1}
    new = _resumed(work, len(lines))
    first = {}
    for r in new:
        if r.get("type") == "step" and r.get("event") == "start":
            first.setdefault(r["key"], r["step"])
    assert first == {"late": "sync_template", "nostart": "instantiate", "nosecret": "sync_template"}
    assert replay.instances["nostart"].status == "done"
    assert replay.instances["nosecret"].status == "failed"
