"""Throttling in a run: a 429 storm during the start-up template lookup is waited out, and a
step that runs out of time because of 429s says so, and for how long it waited on them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bulkprov.mockgraph import MockGraph, MockSettings

from .enginekit import aws_manifest, run_engine
from .graphclient import PlainGraph

pytestmark = pytest.mark.anyio


async def faults(graph: PlainGraph, **changes: Any) -> None:
    r = await graph.post(
        f"{graph.info.graph_url}/_mock/control",
        {"action": "settings", "changes": {"faults": changes}},
    )
    assert r.status == 200, r.body


@pytest.mark.parametrize("mock_settings", [MockSettings.quiet(time_scale=0.002)])
async def test_a_429_storm_on_the_template_lookup_is_waited_out(
    mock: MockGraph, graph: PlainGraph, tmp_path: Path
) -> None:
    """Forty 429s in a row (more than a request's 429 budget) on applicationTemplates, each
    with a Retry-After of 10 Graph s, delay the run's start; the run then completes."""
    await faults(graph, throttle_burst={"templates": 40}, throttle_retry_after=10.0)
    manifest = aws_manifest(tmp_path / "m.csv", 2, start=False)
    result = await run_engine(mock, manifest, tmp_path / "ledger.jsonl")
    assert result.statuses == {"done": 2}, result.failures
    assert mock.stats()["byRoute"]["GET /applicationTemplates"]["429"] == 40


@pytest.mark.parametrize("mock_settings", [MockSettings.quiet(time_scale=0.01)])
async def test_a_step_out_of_time_under_429s_says_how_long_it_waited(
    mock: MockGraph, graph: PlainGraph, tmp_path: Path
) -> None:
    """A step whose requests keep getting 429s fails with StepDeadline, naming the deadline
    and the Graph seconds spent waiting on Retry-After in the write scope."""
    await faults(graph, throttle_burst={"validate": 50}, throttle_retry_after=30.0)
    manifest = aws_manifest(tmp_path / "m.csv", 1, start=False)
    result = await run_engine(mock, manifest, tmp_path / "ledger.jsonl", step_deadline=100.0)
    [failure] = result.failures
    assert failure["step"] == "validate" and failure["code"] == "StepDeadline", failure
    found = re.fullmatch(
        r"did not finish within the step deadline of 100 Graph seconds; (\d+) Graph s of it "
        r"waiting on Graph's 429 Retry-After in scope write",
        failure["message"],
    )
    assert found is not None, failure["message"]
    assert 60 <= int(found.group(1)) <= 100


@pytest.mark.parametrize("mock_settings", [MockSettings.quiet(time_scale=0.01)])
async def test_a_step_out_of_time_without_429s_names_only_the_deadline(
    mock: MockGraph, graph: PlainGraph, tmp_path: Path
) -> None:
    """A step that runs out of time on a slow answer fails with StepDeadline and no word of
    throttling."""
    await faults(graph, slow_burst={"validate": 1}, slow_delay=150.0)
    manifest = aws_manifest(tmp_path / "m.csv", 1, start=False)
    result = await run_engine(
        mock,
        manifest,
        tmp_path / "ledger.jsonl",
        step_deadline=100.0,
        client={"request_timeout": 1000.0},
    )
    [failure] = result.failures
    assert failure["step"] == "validate" and failure["code"] == "StepDeadline", failure
    assert failure["message"] == "did not finish within the step deadline of 100 Graph seconds"
