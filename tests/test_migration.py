"""Tenant-to-tenant migration end to end: onboard and customise in tenant A, ``bulkprov export``
from A, ``plan`` and ``run`` into tenant B, all as separate processes over real HTTPS to a
two-tenant mock Graph; then B's job schemas must equal A's."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from bulkprov import schema as schema_mod
from bulkprov.mockgraph import MockInfo

from .enginekit import AWS, KEY_ID, SECRET_KEY
from .graphclient import PlainGraph
from .mockproc import wait_for_info

SLACK_TOKEN = "xoxb-1234567890-abcdefghij"


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "bulkprov.cli", *args]


@pytest.fixture
def two_tenants(tmp_path: Path) -> Iterator[tuple[MockInfo, Path]]:
    info_file = tmp_path / "mock.json"
    proc = subprocess.Popen(
        _cmd(
            "mock-graph",
            "--port",
            "0",
            "--info-file",
            str(info_file),
            "--time-scale",
            "0.01",
            "--tenants",
            "2",
            "--no-latency",
            "--state-dir",
            str(tmp_path / "mockstate"),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield wait_for_info(info_file, proc), info_file
    proc.terminate()
    proc.wait(timeout=10)


def _bulkprov(
    info_file: Path, tenant: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BULKPROV_")}
    full_env.update(env or {})
    return subprocess.run(
        _cmd(*args, "--mock-info", str(info_file), "--tenant-id", tenant),
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
        check=False,
    )


def _source_manifest(path: Path) -> Path:
    secrets = path.parent / "secrets"
    secrets.mkdir()
    (secrets / "key-id").write_text(KEY_ID + "\n")
    (secrets / "secret").write_text(SECRET_KEY + "\n")
    (secrets / "slack").write_text(SLACK_TOKEN + "\n")
    aws = {"ClientSecret": "file:secrets/key-id", "SecretToken": "file:secrets/secret"}
    instances = [
        {"key": f"aws-{n}", "displayName": f"AWS {n}", "template": AWS, "credentials": aws}
        for n in ("alpha", "beta", "gamma")
    ]
    instances.append(
        {
            "key": "slack",
            "displayName": "Slack corp",
            "template": "Slack",
            "credentials": {"SecretToken": "file:secrets/slack"},
        }
    )
    path.write_bytes(orjson.dumps({"instances": instances}))
    return path


async def _jobs_by_name(g: PlainGraph) -> dict[str, tuple[str, dict[str, Any]]]:
    """display name -> (service principal id, its one job), for every app that has a job."""
    out = {}
    r = await g.get("/servicePrincipals", params={"$select": "id,displayName"})
    for sp in r.body["value"]:
        jobs = (await g.get(f"/servicePrincipals/{sp['id']}/synchronization/jobs")).body["value"]
        if jobs:
            out[sp["displayName"]] = (sp["id"], jobs[0])
    return out


async def _schema(g: PlainGraph, sp: str, job: str) -> dict[str, Any]:
    r = await g.get(f"/servicePrincipals/{sp}/synchronization/jobs/{job}/schema")
    assert r.status == 200, r.body
    return dict(r.body)


async def _customise(g: PlainGraph, sp: str, job: str, *, scope: bool) -> dict[str, Any]:
    """Change an attribute mapping, drop another, and (if ``scope``) add a scoping filter."""
    schema = {k: v for k, v in (await _schema(g, sp, job)).items() if "@odata" not in k}
    om = schema["synchronizationRules"][0]["objectMappings"][-1]
    maps = om["attributeMappings"]
    maps[-1]["source"] = {
        "expression": 'Join(" ", [givenName], [surname])',
        "name": "Join",
        "type": "Function",
        "parameters": [],
    }
    maps[-1]["flowType"] = "ObjectAddOnly"
    del maps[1]
    if scope:
        om["scope"] = {
            "categoryFilterGroups": [],
            "inputFilterGroups": [],
            "groups": [
                {
                    "name": "only engineering",
                    "clauses": [
                        {
                            "operatorName": "EQUALS",
                            "sourceOperandName": "department",
                            "targetOperand": {"values": ["Engineering"]},
                        }
                    ],
                }
            ],
        }
    r = await g.put(f"/servicePrincipals/{sp}/synchronization/jobs/{job}/schema", schema)
    assert r.status == 204, r.body
    return schema


def _plan(
    info_file: Path, tenant: str, manifest: Path, env: dict[str, str], *extra: str
) -> dict[str, Any]:
    r = _bulkprov(info_file, tenant, "plan", str(manifest), "--json", *extra, env=env)
    assert r.returncode in (0, 1), r.stderr
    return dict(orjson.loads(r.stdout))


@pytest.mark.slow
@pytest.mark.anyio
async def test_export_plan_run_into_another_tenant(
    two_tenants: tuple[MockInfo, Path], tmp_path: Path
) -> None:
    info, info_file = two_tenants
    tenant_a, tenant_b = info.tenant_ids
    # 1. tenant A: onboard four apps with the engine, then customise three job schemas
    (tmp_path / "src").mkdir()
    src = _source_manifest(tmp_path / "src" / "apps.json")
    r = _bulkprov(
        info_file, tenant_a, "run", str(src), "--ledger", str(tmp_path / "a.jsonl"), "--no-monitor"
    )
    assert r.returncode == 0, r.stderr
    async with PlainGraph(info, tenant_id=tenant_a) as ga:
        jobs_a = await _jobs_by_name(ga)
        assert set(jobs_a) == {"AWS alpha", "AWS beta", "AWS gamma", "Slack corp"}
        custom = {}
        for name, scope in (("AWS alpha", True), ("AWS beta", False), ("Slack corp", True)):
            sp, job = jobs_a[name]
            custom[name] = await _customise(ga, sp, job["id"], scope=scope)
        schemas_a = {n: await _schema(ga, sp, job["id"]) for n, (sp, job) in jobs_a.items()}
    default = schema_mod.normalise(schemas_a["AWS gamma"])
    assert schema_mod.first_difference(default, schema_mod.normalise(schemas_a["AWS alpha"]))

    # 2. export from A
    out = tmp_path / "migration"
    r = _bulkprov(info_file, tenant_a, "export", "--out", str(out))
    assert r.returncode == 0, r.stderr
    manifest = out / "manifest.json"
    doc = orjson.loads(manifest.read_bytes())
    by_name = {i["displayName"]: i for i in doc["instances"]}
    assert set(by_name) == set(jobs_a)
    alpha = by_name["AWS alpha"]
    assert alpha["start"] is True and alpha["syncTemplate"] == "aws"
    assert set(alpha["credentials"]) == {"ClientSecret", "SecretToken"}
    assert all(v.startswith("env:SECRET_") for v in alpha["credentials"].values())
    assert alpha["schedule"]["state"] == "Active"
    assert {"name": "QuarantineTooManyDeletesThreshold", "value": "500"} in alpha["jobSettings"]
    exported = orjson.loads((out / alpha["schema"]).read_bytes())
    assert schema_mod.normalise(exported) == schema_mod.normalise(schemas_a["AWS alpha"])
    secrets_env = (out / "secrets.env").read_text()
    assert KEY_ID not in secrets_env and SECRET_KEY not in (out / "manifest.json").read_text()
    env: dict[str, str] = {}
    values = {"ClientSecret": KEY_ID, "SecretToken": SECRET_KEY}
    for inst in doc["instances"]:
        for key, ref in inst["credentials"].items():
            assert f"{ref[4:]}=" in secrets_env
            env[ref[4:]] = SLACK_TOKEN if inst["displayName"] == "Slack corp" else values[key]

    # 3. unresolved secret references: plan and run refuse, naming the variable
    missing = dict(env)
    gone = alpha["credentials"]["SecretToken"][4:]
    del missing[gone]
    for args in (
        ("plan", str(manifest)),
        ("run", str(manifest), "--ledger", str(tmp_path / "b.jsonl")),
    ):
        r = _bulkprov(info_file, tenant_b, *args, env=missing)
        assert r.returncode == 2, r.stdout + r.stderr
        assert gone in r.stderr and "credentials.SecretToken" in r.stderr
    assert not (tmp_path / "b.jsonl").exists()

    # 4. plan against B: everything to create; a planted app of another template conflicts
    async with PlainGraph(info, tenant_id=tenant_b) as gb:
        slack_tpl = (
            await gb.get("/applicationTemplates", params={"$filter": "displayName eq 'Slack'"})
        ).body["value"][0]["id"]
        planted = await gb.post(
            f"/applicationTemplates/{slack_tpl}/instantiate", {"displayName": "AWS beta"}
        )
        assert planted.status == 201
        plan = _plan(info_file, tenant_b, manifest, env)
        actions = {r["displayName"]: r["action"] for r in plan["instances"]}
        assert actions == {
            "AWS alpha": "create",
            "AWS beta": "conflict",
            "AWS gamma": "create",
            "Slack corp": "create",
        }
        note = next(r["note"] for r in plan["instances"] if r["action"] == "conflict")
        assert "another template" in note and planted.body["application"]["id"] in note
        assert (await gb.delete(f"/applications/{planted.body['application']['id']}")).status == 204
        # table output too
        r = _bulkprov(info_file, tenant_b, "plan", str(manifest), env=env)
        assert r.returncode == 0 and "create" in r.stdout, r.stdout + r.stderr

        # 5. run into B, then plan shows done and the schemas equal A's
        ledger = tmp_path / "b.jsonl"
        r = _bulkprov(
            info_file,
            tenant_b,
            "run",
            str(manifest),
            "--ledger",
            str(ledger),
            "--no-monitor",
            env=env,
        )
        assert r.returncode == 0, r.stderr
        for secret in (KEY_ID, SECRET_KEY, SLACK_TOKEN):
            assert secret not in ledger.read_text() and secret not in r.stderr + r.stdout
        plan = _plan(info_file, tenant_b, manifest, env, "--ledger", str(ledger))
        assert {r["action"] for r in plan["instances"]} == {"done"}
        jobs_b = await _jobs_by_name(gb)
        assert set(jobs_b) == set(jobs_a)
        for name, (sp, job) in jobs_b.items():
            got = schema_mod.normalise(await _schema(gb, sp, job["id"]))
            assert (
                schema_mod.first_difference(schema_mod.normalise(schemas_a[name]), got) is None
            ), name
            assert (
                job["synchronizationJobSettings"] == jobs_a[name][1]["synchronizationJobSettings"]
            )
        assert jobs_b["AWS alpha"][1]["status"]["code"] == "Active"
    steps = [orjson.loads(line) for line in ledger.read_bytes().splitlines()]
    schema_done = [s for s in steps if s.get("step") == "schema" and s.get("event") == "done"]
    assert len(schema_done) == 4
    assert any(s["data"]["scoped"] == 1 for s in schema_done)
