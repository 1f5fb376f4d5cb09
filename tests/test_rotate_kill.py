"""kill -9 during a credential rotation, then resume: every instance ends with the new
credentials, nothing re-created, and no write doubled but the one a killed step may have sent
before its ``done`` record was written."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bulkprov import ledger as ledger_mod
from bulkprov.mockgraph import MockGraph
from bulkprov.mockgraph.handlers.synchronization import Synchronization
from bulkprov.mockgraph.server import write_info
from bulkprov.mockgraph.settings import MockSettings

from .enginekit import aws_manifest, run_engine, tenant_stats, write_secrets
from .test_day2 import NEW_ID, NEW_SECRET

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def _steps(ledger: Path, offset: int) -> list[dict[str, Any]]:
    """The step records written after ``offset`` (whole lines only)."""
    data = ledger.read_bytes()[offset:]
    lines = data.splitlines()[: data.count(b"\n")]
    recs = [orjson.loads(x) for x in lines if x.strip()]
    return [r for r in recs if r.get("type") == "step"]


def _in_flight(steps: list[dict[str, Any]], name: str) -> set[str]:
    """Instances whose step ``name`` was started and neither done nor failed."""
    state: dict[str, str] = {}
    for r in steps:
        if r.get("step") == name:
            state[r["key"]] = r["event"]
    return {k for k, e in state.items() if e == "start"}


async def test_kill_9_during_a_rotation_then_resume(
    mock_settings: MockSettings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    writes: dict[str, Counter[str]] = {"validate": Counter(), "secrets": Counter()}
    validate, put_secrets = Synchronization.validate_job, Synchronization.put_secrets

    async def counted_validate(self: Synchronization, ctx: Any, id: str, jobId: str) -> Any:
        writes["validate"][id] += 1
        return await validate(self, ctx, id, jobId)

    async def counted_secrets(self: Synchronization, ctx: Any, id: str) -> Any:
        writes["secrets"][id] += 1
        return await put_secrets(self, ctx, id)

    monkeypatch.setattr(Synchronization, "validate_job", counted_validate)
    monkeypatch.setattr(Synchronization, "put_secrets", counted_secrets)
    n = 30
    async with MockGraph(mock_settings) as mock:
        manifest = aws_manifest(tmp_path / "m.csv", n)
        ledger = tmp_path / "l.jsonl"
        assert (await run_engine(mock, manifest, ledger)).statuses["done"] == n
        apps_before = tenant_stats(mock)["applications"]
        for c in writes.values():
            c.clear()
        write_secrets(tmp_path / "secrets", NEW_ID, NEW_SECRET)  # the rotation
        assert mock.info is not None
        info_file = tmp_path / "mock-info.json"
        write_info(info_file, mock.info)
        cmd = [
            sys.executable,
            "-m",
            "bulkprov.cli",
            "run",
            str(manifest),
            "--ledger",
            str(ledger),
            "--mock-info",
            str(info_file),
            "--concurrency",
            "3",
        ]
        offset = ledger.stat().st_size
        proc = await anyio.open_process(cmd, stdout=None, stderr=None, env=dict(os.environ))
        with anyio.fail_after(120):
            while (
                sum(r["step"] == "rotate" and r["event"] == "done" for r in _steps(ledger, offset))
                < 3
            ):
                assert proc.returncode is None, "the run ended before it was killed"
                await anyio.sleep(0.005)
        proc.kill()  # SIGKILL
        await proc.wait()
        killed = _steps(ledger, offset)
        rotated = {r["key"] for r in killed if r["step"] == "rotate" and r["event"] == "done"}
        assert 3 <= len(rotated) < n, "killed too late to test a resume"
        # the steps the kill cut short may have reached Graph before their done record
        validating = _in_flight(killed, "rotate_validate")
        saving = _in_flight(killed, "rotate")
        resumed = await anyio.run_process(cmd, check=False, env=dict(os.environ))
        assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    tenant = next(iter(mock.service.tenants.values()))
    sps = tenant.service_principals
    assert all(
        sp.secrets == {"ClientSecret": NEW_ID, "SecretToken": NEW_SECRET} for sp in sps.values()
    ), "some instance kept the old credentials"
    t = tenant_stats(mock)
    assert t["applications"] == apps_before == n and t["duplicates"] == 0  # nothing re-created
    sp_of = {st.ids["servicePrincipalId"]: k for k, st in ledger_mod.read(ledger).instances.items()}
    assert set(writes["validate"]) == set(writes["secrets"]) == set(sps)
    for sp_id in sps:
        key = sp_of[sp_id]
        # one validate and one secrets PUT each; an instance whose step the kill cut short
        # (started, no done record) may have one more of that step: its request may or may
        # not have reached Graph before the kill, and the resume cannot know, so sends it again
        assert 1 <= writes["validate"][sp_id] <= 1 + (key in validating), key
        assert 1 <= writes["secrets"][sp_id] <= 1 + (key in saving), key
    extra = sum(writes["validate"].values()) + sum(writes["secrets"].values()) - 2 * n
    assert extra <= len(validating) + len(saving) <= 2 * 3  # at most --concurrency in flight
