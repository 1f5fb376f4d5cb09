"""The parts of migration: manifest fields, schema comparison, the mock's schema checks, and
export's filters (against the mock over real HTTPS)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bulkprov import schema as schema_mod
from bulkprov.client import GraphClient
from bulkprov.export import ExportFilter, export, instance_key
from bulkprov.graph import Graph
from bulkprov.manifest import iter_instances, validate
from bulkprov.mockgraph import MockGraph
from bulkprov.settings import ClientSettings

from .enginekit import aws_manifest, connection, run_engine
from .graphclient import PlainGraph


def _schema_file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"version": "1.0", "synchronizationRules": [], "directories": []}')
    return path


def _manifest(tmp_path: Path, **fields: Any) -> Path:
    inst = {
        "key": "a",
        "displayName": "A",
        "template": "Slack",
        "start": False,
        "validate": False,
        **fields,
    }
    path = tmp_path / "m.json"
    path.write_text('{"instances": [\n' + orjson.dumps(inst).decode() + "\n]}")
    return path


def test_manifest_reads_migration_fields(tmp_path: Path) -> None:
    _schema_file(tmp_path / "schemas" / "a.json")
    path = _manifest(
        tmp_path,
        schema="schemas/a.json",
        schedule={"interval": "PT40M", "state": "Active"},
        jobSettings=[{"name": "QuarantineTooManyDeletesThreshold", "value": "500"}],
    )
    assert validate(path).problems == []
    inst = next(iter_instances(path))
    assert inst.schema_file == tmp_path / "schemas" / "a.json"
    assert dict(inst.schedule) == {"interval": "PT40M", "state": "Active"}
    assert inst.job_settings == (("QuarantineTooManyDeletesThreshold", "500"),)


@pytest.mark.parametrize(
    ("fields", "field", "text"),
    [
        ({"schema": "schemas/none.json"}, "schema", "cannot read schema file"),
        ({"schema": 3}, "schema", "must be the path"),
        ({"schedule": {"interval": "40 minutes"}}, "schedule.interval", "ISO 8601"),
        ({"schedule": {"state": "Running"}}, "schedule.state", "Active, Disabled, Paused"),
        ({"schedule": {"every": "PT1H"}}, "schedule.every", "not a property"),
        ({"jobSettings": [{"name": "x"}]}, "jobSettings[0]", "name"),
        ({"jobSettings": {"x": "y"}}, "jobSettings", "list"),
    ],
)
def test_manifest_migration_field_problems(
    tmp_path: Path, fields: dict[str, Any], field: str, text: str
) -> None:
    problems = validate(_manifest(tmp_path, **fields)).problems
    assert [(p.line, p.field) for p in problems] == [(2, field)]
    assert text in problems[0].message


def test_schema_file_problems_name_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "schemas" / "a.json"
    bad.parent.mkdir()
    bad.write_text('{"synchronizationRules": [\n  {"objectMappings": 1}\n]}')
    problems = validate(_manifest(tmp_path, schema="schemas/a.json")).problems
    assert problems[0].field == "schema"
    assert str(bad) in problems[0].message
    assert "synchronizationRules[0].objectMappings must be a list" in problems[0].message
    bad.write_text('{"synchronizationRules": [\n  oops\n]}')
    problems = validate(_manifest(tmp_path, schema="schemas/a.json")).problems
    assert "line 2: not valid JSON" in problems[0].message


def test_csv_takes_schema_but_not_json_only_fields(tmp_path: Path) -> None:
    _schema_file(tmp_path / "s.json")
    ok = tmp_path / "ok.csv"
    ok.write_text("key,displayName,template,start,validate,schema\na,A,Slack,false,false,s.json\n")
    assert validate(ok).problems == []
    assert next(iter_instances(ok)).schema_file == tmp_path / "s.json"
    bad = tmp_path / "bad.csv"
    bad.write_text("key,displayName,template,schedule\na,A,Slack,PT40M\n")
    with pytest.raises(Exception, match="only allowed in JSON") as err:
        validate(bad)
    assert "schedule" in str(err.value)


def test_normalise_and_first_difference() -> None:
    a = {
        "id": "job-a",
        "@odata.context": "x",
        "version": "1.0",
        "directories": [{"id": "d1", "name": "AAD", "discoveryDateTime": "t1", "objects": []}],
        "synchronizationRules": [
            {
                "objectMappings": [
                    {
                        "attributeMappings": [
                            {"targetAttributeName": "userName", "matchingPriority": 1}
                        ]
                    }
                ]
            }
        ],
    }
    b = orjson.loads(orjson.dumps(a))
    b["id"], b["directories"][0]["id"], b["directories"][0]["discoveryDateTime"] = "j", "d2", "t"
    assert schema_mod.first_difference(schema_mod.normalise(a), schema_mod.normalise(b)) is None
    b["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"][0][
        "matchingPriority"
    ] = 0
    path, x, y = schema_mod.first_difference(schema_mod.normalise(a), schema_mod.normalise(b)) or (
        "",
        None,
        None,
    )
    assert path == "synchronizationRules[0].objectMappings[0].attributeMappings[0].matchingPriority"
    assert (x, y) == (1, 0)
    b["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"][0][
        "matchingPriority"
    ] = 1
    b["synchronizationRules"][0]["objectMappings"].append({})
    assert (
        schema_mod.first_difference(a["synchronizationRules"], b["synchronizationRules"])[0]
        == "[0].objectMappings (length)"
    )  # type: ignore[index]
    body = schema_mod.for_put(a, {"directories": [{"id": "target-dir", "name": "AAD"}]})
    assert "id" not in body and body["directories"][0]["id"] == "target-dir"


def test_instance_keys_are_valid_and_unique() -> None:
    taken: set[str] = set()
    keys = [instance_key(n, taken) for n in ("AWS (prod) #1", "AWS (prod) #1", "  ***", "é")]
    assert keys == ["aws-prod-1", "aws-prod-1-2", "app", "app-2"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "change",
    [
        (
            "om",
            "bogus",
            1,
            "Property 'bogus' does not exist on type 'microsoft.graph.objectMapping'",
        ),
        ("am", "flowType", "Sometimes", "not a member of the attributeFlowType enumeration"),
        ("am", "matchingPriority", "1", "must be an integer"),
        (
            "om",
            "scope",
            {"groups": [{"clauses": [{"operator": "EQUALS"}]}]},
            "Property 'operator' does not exist on type 'microsoft.graph.filterClause'",
        ),
    ],
)
async def test_mock_refuses_malformed_schema_bodies(
    graph: PlainGraph, change: tuple[str, str, Any, str]
) -> None:
    r = await graph.get("/applicationTemplates", params={"$filter": "displayName eq 'Slack'"})
    tpl = r.body["value"][0]["id"]
    sp = (
        await graph.post(
            f"/applicationTemplates/{tpl}/instantiate", {"displayName": "Slack schema"}
        )
    ).body["servicePrincipal"]["id"]
    job = (
        await graph.post(f"/servicePrincipals/{sp}/synchronization/jobs", {"templateId": "slack"})
    ).body["id"]
    url = f"/servicePrincipals/{sp}/synchronization/jobs/{job}/schema"
    schema = {k: v for k, v in (await graph.get(url)).body.items() if "@odata" not in k}
    om = schema["synchronizationRules"][0]["objectMappings"][0]
    where, key, value, message = change
    (om if where == "om" else om["attributeMappings"][0])[key] = value
    r = await graph.put(url, schema)
    assert r.status == 400 and message in r.body["error"]["message"]
    assert (await graph.get(url)).body["synchronizationRules"] != schema["synchronizationRules"]


@pytest.mark.anyio
async def test_export_filters(mock: MockGraph, tmp_path: Path) -> None:
    manifest = aws_manifest(tmp_path / "m.csv", 3, start=False)
    result = await run_engine(mock, manifest, tmp_path / "l.jsonl", monitor=False)
    assert result.ok
    settings = ClientSettings(time_scale=mock.settings.time_scale)
    async with GraphClient(connection(mock), settings) as c:
        g = Graph(c)
        every = await export(g, tmp_path / "all", ExportFilter(), source="A")
        glob = await export(
            g, tmp_path / "glob", ExportFilter(name="AWS acct 0000[02]"), source="A"
        )
        sub = await export(
            g, tmp_path / "sub", ExportFilter(name="ACCT 00001", template="Slack"), source="A"
        )
        sps = await g.service_principals()
        one = next(s for s in sps if s["displayName"] == "AWS acct 00001")
        by_id = await export(
            g, tmp_path / "ids", ExportFilter(ids=frozenset({one["appId"]})), source="A"
        )
    names = lambda r: sorted(i["displayName"] for i in r.instances)  # noqa: E731
    assert names(every) == ["AWS acct 00000", "AWS acct 00001", "AWS acct 00002"]
    assert names(glob) == ["AWS acct 00000", "AWS acct 00002"]
    assert names(sub) == []
    assert names(by_id) == ["AWS acct 00001"]
    assert all(i["start"] is False for i in every.instances)  # the jobs were never started
    assert validate(every.manifest).problems  # secrets not set: the references do not resolve
    assert (tmp_path / "all" / "secrets.env").stat().st_mode & 0o077 == 0
