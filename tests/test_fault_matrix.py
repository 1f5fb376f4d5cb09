"""The fault matrix: the engine run under one kind of Graph misbehaviour at a time, over real
HTTPS against a time-scaled mock, each case checked against the same invariant
(:func:`tests.invariant.check_run`): every instance ends done, or failed with its step and a
reason; nothing is created twice; nothing exists in the mock that the ledger does not record;
and what the ledger records for a done instance is what the mock holds.

Each case also checks, from the mock's counters, that its fault did happen. Decisions that the
cases pin down:

- replication slower than ``replication_deadline`` (300 Graph s): the instance fails at the step
  that waited (``replicate``), saying what it waited for and how long; a re-run with the same
  ledger resumes from that step and creates nothing new;
- a token endpoint that fails for a while: every request waits for the token (MSAL replays a
  5xx from its cache for 5 s, so this case takes a few real seconds), and the run completes;
- a ledger written for another manifest is refused before anything is sent or written.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from bulkprov import ledger as ledger_mod
from bulkprov.errors import LedgerError
from bulkprov.mockgraph import (
    FaultSettings,
    JobSettings,
    MockGraph,
    MockSettings,
    ReplicationSettings,
)
from bulkprov.mockgraph.server import write_info

from .enginekit import aws_manifest, run_engine
from .invariant import check_run

pytestmark = pytest.mark.anyio

SCALE = 0.005  # 1 Graph second = 5 ms: the client's 100 s request timeout is 0.5 s
N = 16


def mock(faults: FaultSettings | None = None, **changes: Any) -> MockSettings:
    """No latency or quota; replication as Graph's (a few seconds, with flapping reads)."""
    base = MockSettings.quiet(
        time_scale=SCALE,
        replication=ReplicationSettings(min_delay=1.0, max_delay=6.0, flap=3.0),
        faults=faults or FaultSettings(),
    )
    return base.evolve(**changes)


def _count(ledger: Path, fragment: bytes) -> int:
    return ledger.read_bytes().count(fragment) if ledger.exists() else 0


async def _ledger_has(ledger: Path, fragment: bytes, count: int) -> None:
    """Wait until the ledger (written by the run under test) holds ``fragment`` count times."""
    while True:
        if _count(ledger, fragment) >= count:
            return
        await anyio.sleep(0.02)


def arm_during_monitoring(changes: dict[str, Any]) -> Callable[[MockGraph, Path], Awaitable[None]]:
    """Set faults on the running mock once jobs are being monitored (mid-run)."""

    async def arm(m: MockGraph, ledger: Path) -> None:
        await _ledger_has(ledger, b'"step":"monitor","event":"start"', 3)
        m.update_settings(changes)

    return arm


@dataclass(frozen=True)
class Case:
    name: str
    settings: MockSettings
    evidence: tuple[str, ...]  # fault counters of the mock that must have moved
    all_done: bool = True
    client: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    during: Callable[[MockGraph, Path], Awaitable[None]] | None = None
    min_tokens: int = 1


CASES = [
    Case(
        "5xx-burst-on-each-write-route",
        mock(
            FaultSettings(
                error_burst={
                    "instantiate": 5,
                    "job_create": 4,
                    "validate": 5,
                    "secrets": 5,
                    "job_control": 5,
                }
            )
        ),
        ("faults_5xx",),
    ),
    Case(
        "5xx-burst-on-reads",
        mock(
            FaultSettings(
                error_burst={
                    "directory_read": 5,
                    "sync_templates": 5,
                    "sync_read": 5,
                    "templates": 3,
                }
            )
        ),
        ("faults_5xx",),
    ),
    Case(
        "connections-dropped-mid-response",
        mock(
            FaultSettings(
                seed=11,
                drop_rate={"*": 0.03},
                drop_burst={
                    "directory_read": 5,
                    "instantiate": 3,
                    "sync_templates": 4,
                    "sync_read": 4,
                    "job_create": 3,
                    "validate": 3,
                    "secrets": 3,
                    "job_control": 3,
                },
            )
        ),
        ("drops_after",),
    ),
    Case(
        "answers-slower-than-the-client-timeout",
        mock(
            FaultSettings(
                slow_burst={
                    "instantiate": 3,
                    "job_create": 3,
                    "directory_read": 3,
                    "validate": 2,
                    "job_control": 2,
                },
                slow_delay=150.0,
            )
        ),
        ("faults_slow",),
    ),
    Case(
        "429-storm-with-long-retry-after",
        mock(
            FaultSettings(
                throttle_burst={"instantiate": 3, "job_create": 3, "sync_read": 3},
                throttle_retry_after=300.0,
            )
        ),
        ("faults_429_storm",),
    ),
    Case(
        "replication-long-but-within-the-deadline",
        mock(replication=ReplicationSettings(min_delay=120.0, max_delay=250.0, flap=10.0)),
        (),
    ),
    Case(
        "instantiate-404-but-created",
        mock(FaultSettings(seed=5, instantiate_404_rate=0.5)),
        ("instantiate_404_but_created",),
    ),
    Case(
        "instantiate-timeout-but-created",
        mock(FaultSettings(seed=5, instantiate_timeout_rate=0.4, instantiate_timeout=150.0)),
        ("instantiate_timeout_but_created",),
    ),
    Case(
        "token-expires-mid-run",
        mock(token_lifetime=1.0, jobs=JobSettings(first_cycle_delay=300.0)),
        (),
        min_tokens=3,
    ),
    Case(
        "token-endpoint-down-then-up",
        mock(token_lifetime=1.0, jobs=JobSettings(first_cycle_delay=300.0)),
        ("faults_token_5xx", "faults_token_drop"),
        min_tokens=2,
        # the outage lasts real seconds (MSAL's cache replays a 503 for 5 s): thousands of
        # Graph seconds at this time scale, so the deadlines are stretched to match
        run={"step_deadline": 40_000.0, "monitor_deadline": 40_000.0},
        during=arm_during_monitoring(
            {"faults": {"drop_burst": {"token": 2}, "error_burst": {"token": 1}}}
        ),
    ),
    Case(
        "malformed-answers-everywhere",
        mock(
            FaultSettings(
                seed=9,
                malformed_rate={"*": 0.06},
                malformed_burst={"instantiate": 3, "job_create": 3},
            )
        ),
        ("faults_malformed_html_502", "faults_malformed_truncated"),
    ),
]


async def _run_case(case: Case, m: MockGraph, tmp_path: Path) -> tuple[Path, Path]:
    manifest = aws_manifest(tmp_path / "m.csv", N)
    ledger = tmp_path / "ledger.jsonl"
    async with anyio.create_task_group() as tg:
        if case.during is not None:
            tg.start_soon(case.during, m, ledger)
        with anyio.fail_after(60):
            await run_engine(m, manifest, ledger, case.client, **case.run)
        tg.cancel_scope.cancel()
    return manifest, ledger


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_fault_matrix(case: Case, tmp_path: Path) -> None:
    async with MockGraph(case.settings) as m:
        manifest, ledger = await _run_case(case, m, tmp_path)
        verdict = check_run(m, manifest, ledger)
        stats = m.stats()
    assert not verdict.problems, str(verdict)
    if case.all_done:
        assert verdict.statuses == {"done": N}, f"{verdict}\n{verdict.failures}"
    for counter in case.evidence:
        assert stats["faults"].get(counter, 0) > 0, (counter, stats["faults"])
    assert stats["tokensIssued"] >= case.min_tokens
    # no failure was an unexpected exception: each has a reason that names what went wrong
    assert all(f.get("code") != "Unexpected" for f in verdict.failures.values())


async def test_replication_longer_than_the_deadline_fails_at_replicate_then_resumes(
    tmp_path: Path,
) -> None:
    """Service principals that stay unreadable longer than replication_deadline fail their
    instance at `replicate`, saying what was waited for and how long; a re-run with the same
    ledger resumes there and ends with every instance done and nothing created twice."""
    settings = mock(replication=ReplicationSettings(min_delay=340.0, max_delay=400.0, flap=0.0))
    async with MockGraph(settings) as m:
        manifest = aws_manifest(tmp_path / "m.csv", 12)
        ledger = tmp_path / "ledger.jsonl"
        first = await run_engine(m, manifest, ledger)
        verdict = check_run(m, manifest, ledger)
        assert not verdict.problems, str(verdict)
        assert first.statuses == {"failed": 12} and verdict.failed_at == {"replicate": 12}
        for err in verdict.failures.values():
            assert err["code"] == "NotYetReplicated"
            assert "service principal" in err["message"]
            assert "still not readable after 30" in err["message"]  # 300 Graph seconds
        second = await run_engine(m, manifest, ledger)
        assert second.statuses == {"done": 12}
        verdict = check_run(m, manifest, ledger)
        assert not verdict.problems, str(verdict)
        assert m.stats()["tenants"][m.info.tenant_id]["created"]["applications"] == 12  # type: ignore[union-attr]


async def test_ledger_of_another_manifest_is_refused_and_not_mixed(tmp_path: Path) -> None:
    """A ledger from an earlier run of another manifest is refused with a clear error before
    any Graph call and any write: for other keys, and for the same keys with other names."""
    async with MockGraph(mock()) as m:
        first = aws_manifest(tmp_path / "first.csv", 6, prefix="first", start=False)
        ledger = tmp_path / "ledger.jsonl"
        assert (await run_engine(m, first, ledger, monitor=False)).statuses == {"done": 6}
        before = ledger.read_bytes()
        requests_before = m.stats()["requests"]
        other = aws_manifest(tmp_path / "other.csv", 6, prefix="other", start=False)
        with pytest.raises(LedgerError, match=r"belongs to another manifest.*'first-00000'"):
            await run_engine(m, other, ledger, monitor=False)
        # same keys, other display names: the ledger's applications are not these instances'
        renamed = tmp_path / "renamed.csv"
        renamed.write_text(first.read_text().replace("AWS first", "AWS renamed"))
        with pytest.raises(LedgerError, match=r"another display name.*'AWS renamed 00000'"):
            await run_engine(m, renamed, ledger, monitor=False)
        assert ledger.read_bytes() == before
        assert m.stats()["requests"] == requests_before
        verdict = check_run(m, first, ledger)
        assert not verdict.problems and verdict.statuses == {"done": 6}, str(verdict)


async def test_sigterm_drains_then_resume_keeps_the_invariant(tmp_path: Path) -> None:
    """`bulkprov run` sent SIGTERM mid-run drains (exit 130, consistent ledger); re-run with the
    same ledger it completes, and the invariant holds against the mock it ran on."""
    settings = mock(jobs=JobSettings(first_cycle_delay=100.0))
    async with MockGraph(settings) as m:
        assert m.info is not None
        info = tmp_path / "mock.json"
        write_info(info, m.info)
        manifest = aws_manifest(tmp_path / "m.csv", 20)
        ledger = tmp_path / "ledger.jsonl"
        cmd = [
            sys.executable,
            "-m",
            "bulkprov.cli",
            "run",
            str(manifest),
            "--mock-info",
            str(info),
            "--ledger",
            str(ledger),
        ]
        env = dict(os.environ)
        async with await anyio.open_process(cmd, env=env) as proc:
            with anyio.fail_after(60):
                await _ledger_has(ledger, b'"event":"done"', 10)
            proc.send_signal(signal.SIGTERM)
            with anyio.fail_after(60):
                code = await proc.wait()
            assert proc.stderr is not None
            err = await proc.stderr.receive(65536)
        assert code == 130, err.decode()[-2000:]
        assert b"SIGTERM: draining" in err
        drained = ledger_mod.read(ledger)
        assert not drained.torn and ledger.read_bytes().endswith(b"\n")
        assert (
            any(s.status == "interrupted" for s in drained.instances.values())
            or len([s for s in drained.instances.values() if s.finished]) < 20
        )
        with anyio.fail_after(60):
            done = await anyio.run_process(cmd, env=env, check=False)
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        verdict = check_run(m, manifest, ledger)
        assert not verdict.problems, str(verdict)
        assert verdict.statuses == {"done": 20}


async def test_job_create_failing_every_time_fails_clearly(tmp_path: Path) -> None:
    """A job creation that answers 5xx on every try fails its instance at `job`, saying how
    many tries were made and what the last answer was; nothing is left half-made but the
    service principal the ledger records."""
    async with MockGraph(mock(FaultSettings(error_burst={"job_create": 10}))) as m:
        manifest = aws_manifest(tmp_path / "m.csv", 2)
        result = await run_engine(m, manifest, tmp_path / "l.jsonl")
        verdict = check_run(m, manifest, tmp_path / "l.jsonl")
    assert not verdict.problems, str(verdict)
    assert result.statuses == {"failed": 2} and verdict.failed_at == {"job": 2}
    for err in verdict.failures.values():
        assert err["code"] == "JobCreateFailed"
        assert "in 5 attempts; the last: POST /servicePrincipals/" in err["message"]
        assert "/synchronization/jobs: 50" in err["message"]
