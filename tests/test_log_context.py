"""Each item's work binds its instance (``bound_contextvars``): the warnings a run, ``monitor
--restart`` and ``cleanup`` log of one instance name it without repeating it at each call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from bulkprov.cleanup import JOB, Cleaner, CleanupPlan, Target
from bulkprov.errors import GraphError
from bulkprov.ledger import InstanceState, Ledger, Replay
from bulkprov.mockgraph import MockGraph
from bulkprov.monitor import QUARANTINE, Monitor, MonitorSettings
from bulkprov.records import FINAL_OK, Status

from .enginekit import aws_manifest, run_engine

pytestmark = pytest.mark.anyio
MERGED = [structlog.contextvars.merge_contextvars]  # the bound context, as the JSON log gets it


class _RefusingGraph:
    """A Graph that refuses every restart and every deletion."""

    def _error(self) -> GraphError:
        return GraphError(400, "BadRequest", "refused", request_id="r-1")

    async def restart_job(self, sp_id: str, job_id: str, scope: str) -> None:
        raise self._error()

    async def delete_job(self, sp_id: str, job_id: str) -> None:
        raise self._error()


def _ledger(path: Path) -> Ledger:
    ledger = Ledger(path)
    ledger.open(manifest=None, graph="https://g.test/v1.0", tenant="t")
    return ledger


def _events(events: list[Any], name: str) -> list[Any]:
    return [e for e in events if e["event"] == name]


async def test_a_failed_instance_is_named_by_its_bound_context(
    mock: MockGraph, tmp_path: Path
) -> None:
    """``instance_failed`` carries the key of the instance whose work logged it."""
    manifest = aws_manifest(tmp_path / "m.csv", 3)
    (tmp_path / "secrets" / "bad").write_text("not-an-aws-key\n")
    text = manifest.read_text().replace("file:secrets/key-id", "file:secrets/bad", 1)
    manifest.write_text(text)
    with capture_logs(processors=MERGED) as events:
        result = await run_engine(mock, manifest, tmp_path / "l.jsonl")
    assert result.statuses == {"done": 2, "failed": 1}
    (failed,) = _events(events, "instance_failed")
    assert failed["instance"] == result.failures[0]["key"]
    assert failed["step"] == "validate"


async def test_a_failed_restart_and_a_failed_deletion_name_their_instance(
    tmp_path: Path,
) -> None:
    """``restart_failed`` (monitor --restart) and ``delete_failed`` (cleanup) name the
    instance each was logged for, out of several handled concurrently."""
    keys = [f"k{i}" for i in range(4)]
    replay = Replay(None, {}, 0, False)
    for key in keys:
        ids = {"servicePrincipalId": f"sp-{key}", "jobId": f"job-{key}"}
        replay.instances[key] = InstanceState(key, ids=ids, status=Status.DONE)
    assert all(st.status in FINAL_OK for st in replay.instances.values())

    class Quarantined(Monitor):
        async def _read(self, row: Any) -> None:
            row["status"] = QUARANTINE

    ledger = _ledger(tmp_path / "l.jsonl")
    graph: Any = _RefusingGraph()
    try:
        monitor = Quarantined(
            graph, replay, MonitorSettings(restart=True, logs=False), ledger=ledger
        )
        targets = [Target(key, key, f"sp-{key}", objects=[(JOB, f"job-{key}")]) for key in keys]
        with capture_logs(processors=MERGED) as events:
            rows = await monitor.run()
            result = await Cleaner(graph, ledger, concurrency=4).run(CleanupPlan(targets, []))
    finally:
        ledger.close()
    assert all("refused" in r["restartError"] for r in rows)
    assert len(result.errors) == 4
    for name in ("restart_failed", "delete_failed"):
        logged = _events(events, name)
        assert sorted(e["instance"] for e in logged) == keys, name
    assert all(e["id"] == f"job-{e['instance']}" for e in _events(events, "delete_failed"))
    assert "instance" not in structlog.contextvars.get_contextvars()  # unbound after
