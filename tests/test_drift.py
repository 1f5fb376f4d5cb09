"""``bulkprov drift`` over real HTTPS on the mock: a tenant changed behind bulkprov's back is
reported (exit 4), recorded in the ledger, and put back by the next ``run``."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from bulkprov import ledger as ledger_mod
from bulkprov.drift import schema_paths
from bulkprov.mockgraph import MockGraph
from bulkprov.mockgraph import drift as mock_drift

from .enginekit import aws_manifest, run_engine, tenant_stats
from .graphclient import PlainGraph
from .opskit import cli
from .test_day2 import _by_route, _writes

pytestmark = pytest.mark.anyio

SCHEMA_PUT = "PUT /servicePrincipals/{id}/synchronization/jobs/{jobId}/schema"


def _ids(ledger: Path, key: str) -> dict[str, str]:
    return ledger_mod.read(ledger).instances[key].ids


def _change(mock: MockGraph, sp_id: str, change: str, **body: Any) -> None:
    """The mock's drift control (as POST /_mock/control action drift does)."""
    mock_drift.apply(
        mock.service.tenants.values(), {"servicePrincipalId": sp_id, "change": change, **body}
    )


async def _drift(
    mock: MockGraph, tmp: Path, ledger: Path, manifest: Path, *extra: str
) -> tuple[int, dict[str, Any]]:
    code, out, err = await cli(mock, tmp, "drift", str(ledger), str(manifest), "--json", *extra)
    assert code in (0, 4), err
    return code, json.loads(out)


def test_schema_paths_name_each_leaf() -> None:
    a = {"rules": [{"name": "x", "maps": [1, 2]}], "v": "1"}
    b = {"rules": [{"name": "y", "maps": [1]}], "v": "1", "new": True}
    assert schema_paths(a, b) == [
        ("rules[0].name", "x", "y"),
        ("rules[0].maps[1]", "2", "<absent>"),
        ("new", "<absent>", "true"),
    ]


async def test_a_paused_job_is_drift_and_run_starts_it(mock: MockGraph, tmp_path: Path) -> None:
    """Paused behind bulkprov's back -> drift exit 4, recorded -> run starts only that job ->
    drift exit 0."""
    manifest = aws_manifest(tmp_path / "m.csv", 3)
    ledger = tmp_path / "l.jsonl"
    assert (await run_engine(mock, manifest, ledger)).statuses["done"] == 3
    code, doc = await _drift(mock, tmp_path, ledger, manifest)
    assert code == 0 and doc["drifted"] == 0, doc
    _change(mock, _ids(ledger, "acct-00001")["servicePrincipalId"], "pause")
    code, doc = await _drift(mock, tmp_path, ledger, manifest)
    assert code == 4 and doc["drifted"] == 1
    (found,) = [i for i in doc["instances"] if i["drifted"]]
    assert found["key"] == "acct-00001" and found["fields"] == ["job"]
    assert found["findings"][0]["live"] == "Paused"
    records = [orjson.loads(x) for x in ledger.read_bytes().splitlines()]
    assert [r["key"] for r in records if r["type"] == "drift"] == ["acct-00001"]
    assert ledger_mod.read(ledger).instances["acct-00001"].applied["start"] is False
    mock.service.requests.clear()
    result = await run_engine(mock, manifest, ledger)
    assert result.statuses["done"] == 3 and result.skipped == 2, result.failures[:3]
    assert _writes(_by_route(mock)) == {
        "POST /servicePrincipals/{id}/synchronization/jobs/{jobId}/start": 1
    }
    assert tenant_stats(mock)["jobStatus"] == {"Active": 3}
    code, doc = await _drift(mock, tmp_path, ledger, manifest)
    assert code == 0, doc
    # the instance's drift is recorded as over (the report's drift column follows it)
    assert ledger_mod.read(ledger).instances["acct-00001"].drifted is False
    code, out, _err = await cli(mock, tmp_path, "drift", str(ledger), str(manifest))
    assert code == 0 and "0 drifted" in out


async def test_renamed_secrets_and_removed_are_drift(mock: MockGraph, tmp_path: Path) -> None:
    """A rename in the portal, a secret key missing, an instance the manifest dropped; a
    secret value changed in the portal is invisible (Graph returns keys only)."""
    manifest = aws_manifest(tmp_path / "m.csv", 3)
    ledger = tmp_path / "l.jsonl"
    assert (await run_engine(mock, manifest, ledger)).statuses["done"] == 3
    sp0 = _ids(ledger, "acct-00000")["servicePrincipalId"]
    _change(mock, sp0, "secret", key="ClientSecret", value="AKIAOTHEROTHEROTHER1")
    code, doc = await _drift(mock, tmp_path, ledger, manifest, "--no-record")
    assert code == 0, doc  # invisible: the key is still saved
    _change(mock, sp0, "rename", displayName="Renamed in the portal")
    tenant = next(iter(mock.service.tenants.values()))
    tenant.service_principals[_ids(ledger, "acct-00001")["servicePrincipalId"]].secrets = {}
    rows = manifest.read_text().splitlines()
    manifest.write_text("\n".join(rows[:-1]) + "\n")  # acct-00002 dropped
    code, doc = await _drift(mock, tmp_path, ledger, manifest, "--no-record")
    assert code == 4
    by_key = {i["key"]: i for i in doc["instances"]}
    assert by_key["acct-00000"]["fields"] == ["displayName"]
    assert by_key["acct-00000"]["findings"][0]["live"] == "Renamed in the portal"
    assert by_key["acct-00001"]["fields"] == ["secrets"]
    assert by_key["acct-00002"]["removed"] is True and by_key["acct-00002"]["fields"] == [
        "manifest"
    ]
    assert "drift" not in ledger.read_text()  # --no-record


async def test_bad_input_is_one_line(mock: MockGraph, tmp_path: Path) -> None:
    manifest = aws_manifest(tmp_path / "m.csv", 1)
    ledger = tmp_path / "l.jsonl"
    assert (await run_engine(mock, manifest, ledger)).statuses["done"] == 1
    code, _out, err = await cli(mock, tmp_path, "drift", str(ledger), str(tmp_path / "no.csv"))
    assert code == 2 and err.strip().count("\n") == 0 and "no.csv" in err, err
    foreign = tmp_path / "foreign.jsonl"
    lines = ledger.read_text().splitlines()
    head = json.loads(lines[0]) | {"tenant": "00000000-0000-0000-0000-000000000000"}
    foreign.write_text("\n".join([json.dumps(head), *lines[1:]]) + "\n")
    code, _out, err = await cli(mock, tmp_path, "drift", str(foreign), str(manifest))
    assert code == 2 and err.strip().count("\n") == 0 and "tenant" in err, err


def _with_schemas(manifest: Path, schema: dict[str, Any]) -> None:
    """Give every instance its own schema file (a copy of ``schema``)."""
    rows = list(csv.reader(manifest.read_text(encoding="utf-8").splitlines()))
    rows[0].append("schema")
    (manifest.parent / "schemas").mkdir(exist_ok=True)
    for row in rows[1:]:
        path = manifest.parent / "schemas" / f"{row[0]}.json"
        path.write_bytes(orjson.dumps(schema))
        row.append(f"schemas/{row[0]}.json")
    with manifest.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)


async def test_one_changed_schema_file_is_the_only_put(
    mock: MockGraph, graph: PlainGraph, tmp_path: Path
) -> None:
    """Change one instance's schema file: drift shows its path-level diff, and the run PUTs
    that instance's schema only."""
    probe_manifest = aws_manifest(tmp_path / "probe" / "m.csv", 1, prefix="probe")
    probe = tmp_path / "probe.jsonl"
    assert (await run_engine(mock, probe_manifest, probe)).statuses["done"] == 1
    ids = _ids(probe, "probe-00000")
    r = await graph.get(
        f"/servicePrincipals/{ids['servicePrincipalId']}/synchronization/jobs/{ids['jobId']}/schema"
    )
    schema = {k: v for k, v in r.body.items() if "@odata" not in k}
    manifest = aws_manifest(tmp_path / "m.csv", 3)
    _with_schemas(manifest, schema)
    ledger = tmp_path / "l.jsonl"
    assert (await run_engine(mock, manifest, ledger)).statuses["done"] == 3
    code, doc = await _drift(mock, tmp_path, ledger, manifest, "--no-record")
    assert code == 0, doc
    changed = json.loads((tmp_path / "schemas" / "acct-00001.json").read_text())
    om = changed["synchronizationRules"][0]["objectMappings"][0]
    old = om["attributeMappings"][0].get("flowType")
    new = "Always" if old == "ObjectAddOnly" else "ObjectAddOnly"
    om["attributeMappings"][0]["flowType"] = new
    (tmp_path / "schemas" / "acct-00001.json").write_text(json.dumps(changed))
    code, doc = await _drift(mock, tmp_path, ledger, manifest, "--no-record")
    assert code == 4
    (found,) = [i for i in doc["instances"] if i["drifted"]]
    assert found["key"] == "acct-00001" and found["fields"] == ["schema"]
    (paths,) = [f["paths"] for f in found["findings"]]
    assert paths == [
        {
            "path": "synchronizationRules[0].objectMappings[0].attributeMappings[0].flowType",
            "desired": new,
            "live": old if old is not None else "<absent>",
        }
    ]
    code, out, _err = await cli(mock, tmp_path, "drift", str(ledger), str(manifest), "--no-record")
    assert code == 4 and "attributeMappings[0].flowType" in out
    mock.service.requests.clear()
    result = await run_engine(mock, manifest, ledger)
    assert result.skipped == 2, result.failures[:3]
    assert _writes(_by_route(mock)) == {SCHEMA_PUT: 1}
    code, doc = await _drift(mock, tmp_path, ledger, manifest, "--no-record")
    assert code == 0, doc


def _with_one_schema(manifest: Path, schema: dict[str, Any]) -> Path:
    """Point every instance at one shared schema file (the template's mapping)."""
    rows = list(csv.reader(manifest.read_text(encoding="utf-8").splitlines()))
    shared = manifest.parent / "aws-mapping.json"
    shared.write_bytes(orjson.dumps(schema))
    rows[0].append("schema")
    for row in rows[1:]:
        row.append(shared.name)
    with manifest.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return shared


async def test_a_changed_template_mapping_is_put_on_every_instance(
    mock: MockGraph, graph: PlainGraph, tmp_path: Path
) -> None:
    """One schema file shared by every instance (the template's mapping) changes: plan shows
    an update of each instance's schema, the run PUTs it once per instance and writes nothing
    else, the mock then holds the new mapping on every job, and a further run writes nothing."""
    probe_manifest = aws_manifest(tmp_path / "probe" / "m.csv", 1, prefix="probe")
    probe = tmp_path / "probe.jsonl"
    assert (await run_engine(mock, probe_manifest, probe)).statuses["done"] == 1
    ids = _ids(probe, "probe-00000")
    r = await graph.get(
        f"/servicePrincipals/{ids['servicePrincipalId']}/synchronization/jobs/{ids['jobId']}/schema"
    )
    schema = {k: v for k, v in r.body.items() if "@odata" not in k}
    manifest = aws_manifest(tmp_path / "m.csv", 6)
    shared = _with_one_schema(manifest, schema)
    ledger = tmp_path / "l.jsonl"
    assert (await run_engine(mock, manifest, ledger)).statuses["done"] == 6
    changed = json.loads(shared.read_text())
    mapping = changed["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"][0]
    new = "Always" if mapping.get("flowType") == "ObjectAddOnly" else "ObjectAddOnly"
    mapping["flowType"] = new
    shared.write_text(json.dumps(changed))
    code, out, _err = await cli(
        mock, tmp_path, "plan", str(manifest), "--ledger", str(ledger), "--json"
    )
    plan = json.loads(out)
    assert code == 0 and plan["counts"] == {"update": 6}, plan["counts"]
    mock.service.requests.clear()
    result = await run_engine(mock, manifest, ledger)
    assert result.failed == 0, result.failures[:3]
    assert _writes(_by_route(mock)) == {SCHEMA_PUT: 6}
    replay = ledger_mod.read(ledger)
    for st in replay.instances.values():
        sp_id, job_id = st.ids["servicePrincipalId"], st.ids["jobId"]
        live = await graph.get(f"/servicePrincipals/{sp_id}/synchronization/jobs/{job_id}/schema")
        rule = live.body["synchronizationRules"][0]
        assert rule["objectMappings"][0]["attributeMappings"][0]["flowType"] == new
    assert tenant_stats(mock)["applications"] == 7  # the probe's and the six: none re-created
    mock.service.requests.clear()
    await run_engine(mock, manifest, ledger)
    assert _writes(_by_route(mock)) == {}


PATCHES = {"PATCH /applications/{id}": 1, "PATCH /servicePrincipals/{id}": 1}


async def test_rename_is_an_update_and_prune_deletes_the_dropped(
    mock: MockGraph, tmp_path: Path
) -> None:
    """A display name changed in the manifest is a rename (two PATCHes), not another
    manifest; an instance the manifest dropped is shown by plan, left alone by run, kept by
    run --prune without --yes or a terminal, and deleted by run --prune --yes."""
    manifest = aws_manifest(tmp_path / "m.csv", 3)
    ledger = tmp_path / "l.jsonl"
    assert (await run_engine(mock, manifest, ledger)).statuses["done"] == 3
    rows = manifest.read_text().splitlines()
    rows[1] = rows[1].replace("AWS acct 00000", "AWS acct zero")
    manifest.write_text("\n".join(rows[:-1]) + "\n")  # and acct-00002 dropped
    code, out, err = await cli(
        mock, tmp_path, "plan", str(manifest), "--ledger", str(ledger), "--json"
    )
    assert code == 0, err
    actions = {r["key"]: r["action"] for r in json.loads(out)["instances"]}
    assert actions == {
        "acct-00000": "update",
        "acct-00001": "done",
        "acct-00002": "removed from manifest",
    }
    mock.service.requests.clear()
    result = await run_engine(mock, manifest, ledger)
    assert result.statuses["done"] == 2 and result.skipped == 1, result.failures[:3]
    assert _writes(_by_route(mock)) == PATCHES
    tenant = next(iter(mock.service.tenants.values()))
    app_id = _ids(ledger, "acct-00000")["applicationId"]
    assert tenant.applications[app_id].display_name == "AWS acct zero"  # type: ignore[attr-defined]
    assert tenant_stats(mock)["applications"] == 3  # acct-00002 left alone
    code, out, err = await cli(
        mock, tmp_path, "run", str(manifest), "--ledger", str(ledger), "--prune"
    )
    assert code == 1 and "--yes" in err, err  # no terminal to ask on: nothing deleted
    assert tenant_stats(mock)["applications"] == 3
    code, out, err = await cli(
        mock, tmp_path, "run", str(manifest), "--ledger", str(ledger), "--prune", "--yes"
    )
    assert code == 0, err
    assert tenant_stats(mock)["applications"] == 2
    assert ledger_mod.read(ledger).instances["acct-00002"].status == "removed"
    code, doc = await _drift(mock, tmp_path, ledger, manifest)
    assert code == 0, doc
