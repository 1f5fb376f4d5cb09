"""After a POST instantiate whose answer was lost, the engine waits for what it may have
created before POSTing again: the whole replication deadline until the run has seen enough
new objects read back, then three times the longest delay seen (at least 60 Graph s)."""

from __future__ import annotations

from pathlib import Path

import anyio
import orjson
import pytest

from bulkprov.mockgraph import MockGraph, MockSettings, ReplicationSettings

from .enginekit import aws_manifest, run_engine, tenant_stats

pytestmark = pytest.mark.anyio

SCALE = 0.01


def _records(ledger: Path) -> list[dict[str, object]]:
    if not ledger.exists():
        return []
    return [orjson.loads(line) for line in ledger.read_bytes().splitlines() if line.strip()]


async def test_wait_after_a_lost_answer_adapts_to_replication_seen(tmp_path: Path) -> None:
    settings = MockSettings.quiet(
        time_scale=SCALE,
        replication=ReplicationSettings(min_delay=1.0, max_delay=3.0, flap=0.0),
    )
    n = 24
    manifest = aws_manifest(tmp_path / "m.csv", n)
    ledger = tmp_path / "run.jsonl"
    async with MockGraph(settings) as mock:

        async def arm_after_replications() -> None:
            # once 12 instances have read their objects back, the next two instantiates fail
            # with a 503 before they take effect (nothing is created)
            while True:
                replicated = sum(
                    1
                    for r in _records(ledger)
                    if r.get("step") == "replicate" and r.get("event") == "done"
                )
                if replicated >= 12:
                    break
                await anyio.sleep(0.01)
            mock.update_settings({"faults": {"error_burst": {"instantiate": 2}}})

        async with anyio.create_task_group() as tg:
            tg.start_soon(arm_after_replications)
            result = await run_engine(mock, manifest, ledger, concurrency=2, monitor=False)
            tg.cancel_scope.cancel()
        stats = tenant_stats(mock)
    assert result.statuses["done"] == n
    assert stats["applications"] == n and stats["duplicates"] == 0
    attempts: dict[str, list[float]] = {}
    for r in _records(ledger):
        if r.get("step") == "instantiate" and r.get("event") == "attempt":
            attempts.setdefault(str(r["key"]), []).append(float(r["t"]))  # type: ignore[arg-type]
    retried = {k: t for k, t in attempts.items() if len(t) > 1}
    assert len(retried) == 2, attempts
    for times in retried.values():
        gap = (times[1] - times[0]) / SCALE  # Graph seconds between the two POSTs
        # max(60, 3 x at most 3 s) = 60 Graph s, not the 300 s deadline
        assert 60 <= gap < 150, gap
