"""On-premises apps: the engine assigns agent groups when signed in with a device code, and
refuses them under app-only credentials; the CLI does the same through connection profiles
written by `bulkprov mock-graph --profiles-file`."""

from __future__ import annotations

import asyncio
import csv
import os
import subprocess
import sys
import time
import tomllib
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from bulkprov import ledger as ledger_mod
from bulkprov.auth import TokenProvider
from bulkprov.client import GraphClient
from bulkprov.errors import ManifestError
from bulkprov.mockgraph import MockGraph
from bulkprov.mockgraph.onprem import OnPremises
from bulkprov.run import Runner
from bulkprov.settings import ClientSettings, Credential, RunSettings

from .enginekit import AWS, connection, tenant_stats, write_secrets
from .graphclient import PlainGraph
from .mockproc import wait_for_info
from .test_mock_onprem import delegated_token

pytestmark = pytest.mark.anyio


def manifest(path: Path, rows: list[tuple[str, str | None]]) -> Path:
    """AWS instances (key, agentGroup) with demo credentials, jobs not started."""
    write_secrets(path.parent / "secrets")
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "key",
                "displayName",
                "template",
                "agentGroup",
                "cred.ClientSecret",
                "cred.SecretToken",
                "start",
            ]
        )
        for key, group in rows:
            w.writerow(
                [
                    key,
                    f"AWS {key}",
                    AWS,
                    group or "",
                    "file:secrets/key-id",
                    "file:secrets/secret",
                    "false",
                ]
            )
    return path


def group_id(mock: MockGraph, name: str) -> str:
    assert mock.info is not None
    seeded = OnPremises.seeded(mock.info.tenant_id)
    return next(g.id for g in seeded.groups.values() if g.display_name == name)


async def run(
    mock: MockGraph, path: Path, ledger: Path, *, device: bool, prompts: list[str] | None = None
) -> Runner:
    conn = connection(mock)
    if device:
        conn = replace(conn, credential=Credential(device_code=True))
    tokens = TokenProvider(conn, prompt=(prompts if prompts is not None else []).append)
    settings = ClientSettings(time_scale=mock.settings.time_scale)
    async with GraphClient(conn, settings, tokens=tokens) as client:
        runner = Runner(
            manifest=path, ledger_path=ledger, client=client, settings=RunSettings(monitor=False)
        )
        await runner.run()
        assert tokens.acquired == 1
        return runner


async def test_device_code_run_assigns_agent_groups(mock: MockGraph, tmp_path: Path) -> None:
    """Signed in with a device code, a run assigns each instance's agent group (by name or
    id) after replication; Graph's connectorGroup shows it, and an instance without one has
    none."""
    west = group_id(mock, "Datacenter West")
    path = manifest(
        tmp_path / "m.csv",
        [("hr-1", "HR on-premises"), ("hr-2", "HR on-premises"), ("west", west), ("cloud", None)],
    )
    prompts: list[str] = []
    runner = await run(mock, path, tmp_path / "l.jsonl", device=True, prompts=prompts)
    assert runner.result.statuses["done"] == 4, runner.result.failures
    assert len(prompts) == 1 and "enter the code" in prompts[0]
    replay = ledger_mod.read(tmp_path / "l.jsonl")
    token = await delegated_token(mock)
    assert mock.info is not None
    async with PlainGraph(mock.info, version="beta", token=token) as g:
        seen = {}
        for key, st in replay.instances.items():
            reply = await g.get(f"/applications/{st.ids['applicationId']}/connectorGroup")
            seen[key] = reply.body.get("name") if reply.status == 200 else reply.status
    assert seen == {
        "hr-1": "HR on-premises",
        "hr-2": "HR on-premises",
        "west": "Datacenter West",
        "cloud": 404,
    }
    assert "agent_group" in replay.instances["west"].done
    assert "agent_group" not in replay.instances["cloud"].done
    assert mock.stats()["byRoute"]["PUT /applications/{id}/connectorGroup/$ref"] == {"204": 3}


async def test_app_only_run_refuses_agent_group(mock: MockGraph, tmp_path: Path) -> None:
    """Under an app-only credential an instance with an agentGroup fails at step agent_group
    with a message naming the instance and the fix, before any application is created for it;
    the other instances run."""
    path = manifest(tmp_path / "m.csv", [("onprem", "HR on-premises"), ("cloud", None)])
    runner = await run(mock, path, tmp_path / "l.jsonl", device=False)
    result = runner.result
    assert result.statuses == {"done": 1, "failed": 1}
    (failure,) = result.failures
    assert failure["key"] == "onprem" and failure["step"] == "agent_group"
    assert failure["code"] == "DelegatedOnly"
    assert "device-code profile" in failure["message"] and "app-only secret" in failure["message"]
    assert failure["where"].endswith("m.csv:2")
    assert tenant_stats(mock)["applications"] == 1  # nothing was created for "onprem"
    replay = ledger_mod.read(tmp_path / "l.jsonl")
    assert replay.instances["onprem"].ids == {}


async def test_unknown_agent_group_is_a_manifest_problem(mock: MockGraph, tmp_path: Path) -> None:
    """An agent group the tenant does not have is reported with file, line and field before
    anything is created."""
    path = manifest(tmp_path / "m.csv", [("a", "HR on-premises"), ("b", "Nowhere")])
    with pytest.raises(ManifestError) as exc:
        await run(mock, path, tmp_path / "l.jsonl", device=True)
    text = str(exc.value)
    assert "m.csv:3" in text and "field 'agentGroup'" in text and "'Nowhere'" in text
    assert tenant_stats(mock)["applications"] == 0


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bulkprov.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _profiles(path: Path) -> dict[str, object]:
    """The profiles the file holds so far (none while it is absent or written in part)."""
    try:
        return dict(tomllib.loads(path.read_text()).get("profiles", {}))
    except (FileNotFoundError, tomllib.TOMLDecodeError):
        return {}


@pytest.mark.slow
async def test_cli_profiles_from_mock(tmp_path: Path) -> None:
    """`mock-graph --profiles-file` writes one app-only and one device-code profile per tenant;
    `plan` with the app-only one says the agentGroup instance would be refused, and `run`
    with the device-code one assigns it (the sign-in message goes to stderr)."""
    info_file, prof = tmp_path / "mock.json", tmp_path / "profiles.toml"
    proc = await asyncio.to_thread(
        subprocess.Popen,
        [
            sys.executable,
            "-m",
            "bulkprov.cli",
            "mock-graph",
            "--port",
            "0",
            "--tenants",
            "2",
            "--info-file",
            str(info_file),
            "--profiles-file",
            str(prof),
            "--time-scale",
            "0.01",
            "--no-latency",
            "--no-replication",
            "--state-dir",
            str(tmp_path / "state"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        info = await asyncio.to_thread(wait_for_info, info_file, proc)
        deadline = time.monotonic() + 30
        while len(_profiles(prof)) < 4:  # written after the info file, perhaps in part yet
            assert proc.poll() is None and time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert os.stat(prof).st_mode & 0o077 == 0
        assert os.stat(f"{prof}.secret").st_mode & 0o077 == 0
        text = prof.read_text()
        assert info.client_secret not in text  # a reference, never the value
        for name in ("tenant1", "tenant1-device", "tenant2", "tenant2-device"):
            assert f"[profiles.{name}]" in text
        path = manifest(tmp_path / "m.csv", [("onprem", "HR on-premises"), ("cloud", None)])
        env = {**os.environ, "BULKPROV_PROFILES": str(prof), "BULKPROV_TIME_SCALE": "0.01"}
        plan = await asyncio.to_thread(
            _cli, "plan", str(path), "--profile", "tenant1", "--json", env=env
        )
        assert plan.returncode == 1, plan.stderr
        rows = {r["key"]: r for r in orjson.loads(plan.stdout)["instances"]}
        assert rows["onprem"]["action"] == "refuse" and "device-code" in rows["onprem"]["note"]
        assert rows["cloud"]["action"] == "create"
        plan = await asyncio.to_thread(
            _cli, "plan", str(path), "--profile", "tenant1-device", "--json", env=env
        )
        assert plan.returncode == 0, plan.stderr
        rows = {r["key"]: r for r in orjson.loads(plan.stdout)["instances"]}
        assert rows["onprem"]["action"] == "create" and rows["onprem"]["agentGroupId"]
        assert "enter the code" in plan.stderr
        done = await asyncio.to_thread(
            _cli,
            "run",
            str(path),
            "--profile",
            "tenant2-device",
            "--ledger",
            str(tmp_path / "l.jsonl"),
            "--no-monitor",
            env=env,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        replay = ledger_mod.read(tmp_path / "l.jsonl")
        assert replay.header is not None and replay.header.tenant == info.tenant_ids[1]
        assert "agent_group" in replay.instances["onprem"].done
        assert info.client_secret not in done.stdout + done.stderr
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 10)


async def test_refused_instance_resumes_under_device_code(mock: MockGraph, tmp_path: Path) -> None:
    """An instance refused under an app-only credential is set up, once, when the same ledger
    is run again signed in with a device code."""
    path = manifest(tmp_path / "m.csv", [("onprem", "HR on-premises"), ("cloud", None)])
    ledger = tmp_path / "l.jsonl"
    first = await run(mock, path, ledger, device=False)
    assert first.result.statuses == {"done": 1, "failed": 1}
    second = await run(mock, path, ledger, device=True)
    assert second.result.statuses == {"done": 2} and second.result.skipped == 1
    replay = ledger_mod.read(ledger)
    assert replay.instances["onprem"].status == "done"
    assert "agent_group" in replay.instances["onprem"].done
    t = tenant_stats(mock)
    assert t["applications"] == 2 and t["duplicates"] == 0
