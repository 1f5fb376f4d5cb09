"""plan and run over real HTTPS to the mock Graph: what a template's credentials need, read from
a service principal of it or learned by the run's first instance, refuses an instance before
any application is made for it; and plan's decisions are the run's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bulkprov import ledger as ledger_mod
from bulkprov.mockgraph import MockGraph, MockSettings
from bulkprov.planner import UNKNOWN_NEEDS

from .enginekit import AWS, run_engine, tenant_stats, write_secrets
from .graphclient import PlainGraph
from .opskit import cli

pytestmark = pytest.mark.anyio

BOTH = {"ClientSecret": "file:secrets/key-id", "SecretToken": "file:secrets/secret"}
KEY_ONLY = {"ClientSecret": "file:secrets/key-id"}


def manifest(path: Path, rows: list[tuple[str, str, dict[str, str]]], template: str = AWS) -> Path:
    """A JSON manifest of (key, display name, credentials) rows of one template."""
    write_secrets(path.parent / "secrets")
    (path.parent / "secrets" / "bad-key").write_text("not-an-access-key\n")
    path.write_bytes(
        orjson.dumps(
            {
                "instances": [
                    {"key": k, "displayName": n, "template": template, "credentials": c}
                    for k, n, c in rows
                ]
            }
        )
    )
    return path


async def instantiate(graph: PlainGraph, template: str, name: str) -> dict[str, Any]:
    """An application made outside bulkprov (the tenant's own)."""
    found = await graph.get(
        "/applicationTemplates", params={"$filter": f"displayName eq '{template}'"}
    )
    tid = found.body["value"][0]["id"]
    made = await graph.post(f"/applicationTemplates/{tid}/instantiate", {"displayName": name})
    assert made.status == 201, made.body
    return dict(made.body["application"])


async def plan(mock: MockGraph, tmp: Path, path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    code, out, err = await cli(mock, tmp, "plan", str(path), "--json", *extra)
    assert code in (0, 1), err
    return code, {r["key"]: r for r in orjson.loads(out)["instances"]}


def records(ledger: Path, key: str) -> list[dict[str, Any]]:
    lines = [orjson.loads(line) for line in ledger.read_bytes().splitlines()]
    return [r for r in lines if r.get("key") == key and r.get("type") == "step"]


def position(ledger: Path, key: str, step: str, event: str) -> int:
    lines = [orjson.loads(line) for line in ledger.read_bytes().splitlines()]
    return next(
        i
        for i, r in enumerate(lines)
        if r.get("key") == key and r.get("step") == step and r.get("event") == event
    )


class TestPlanReadsNeeds:
    async def test_refuses_once_a_service_principal_exists(
        self, mock: MockGraph, graph: PlainGraph, tmp_path: Path
    ) -> None:
        """Without an AWS service principal in the tenant plan says the needed keys are unknown;
        with one, it refuses the instance lacking SecretToken, naming the key, and exits 1."""
        path = manifest(
            tmp_path / "m.json", [("good", "AWS good", BOTH), ("odd", "AWS odd", KEY_ONLY)]
        )
        code, rows = await plan(mock, tmp_path, path)
        assert code == 0
        assert {k: r["action"] for k, r in rows.items()} == {"good": "create", "odd": "create"}
        assert UNKNOWN_NEEDS in rows["odd"]["note"] and UNKNOWN_NEEDS in rows["good"]["note"]

        await instantiate(graph, AWS, "AWS of the tenant")
        code, rows = await plan(mock, tmp_path, path)
        assert code == 1
        assert rows["good"]["action"] == "create" and "note" not in rows["good"]
        assert rows["odd"]["action"] == "refuse" and rows["odd"]["code"] == "MissingCredentials"
        assert "lacks SecretToken" in rows["odd"]["note"]
        assert tenant_stats(mock)["applications"] == 1  # plan made nothing


class TestRunGate:
    @pytest.mark.parametrize(
        "mock_settings",
        [MockSettings.quiet(time_scale=0.01), MockSettings(time_scale=0.01)],
        ids=["quiet", "latency-and-replication"],
    )
    async def test_odd_instance_waits_and_is_refused(self, mock: MockGraph, tmp_path: Path) -> None:
        """Of three good AWS instances and one lacking SecretToken, in a tenant that has no AWS
        app yet, the run makes exactly three applications: the odd one waits until one of the
        others has read the template's needs, and fails before instantiate, naming the missing
        key."""
        path = manifest(
            tmp_path / "m.json",
            [
                ("a", "AWS a", BOTH),
                ("odd", "AWS odd", KEY_ONLY),
                ("b", "AWS b", BOTH),
                ("c", "AWS c", BOTH),
            ],
        )
        ledger = tmp_path / "l.jsonl"
        result = await run_engine(mock, path, ledger, monitor=False)
        assert result.statuses == {"done": 3, "failed": 1}
        (failure,) = result.failures
        assert failure["key"] == "odd" and failure["step"] == "sync_template"
        assert failure["code"] == "MissingCredentials" and "lacks SecretToken" in failure["message"]
        t = tenant_stats(mock)
        assert t["applications"] == 3 and t["created"]["applications"] == 3
        assert [(r["step"], r["event"]) for r in records(ledger, "odd")] == [
            ("sync_template", "start"),
            ("sync_template", "error"),
        ]
        learned = min(position(ledger, k, "sync_template", "done") for k in "abc")
        assert position(ledger, "odd", "sync_template", "error") > learned

    async def test_needs_known_at_start_refuse_the_first(
        self, mock: MockGraph, graph: PlainGraph, tmp_path: Path
    ) -> None:
        """When the tenant already has an AWS service principal, the run reads the needs at
        start-up and refuses even its first instance lacking SecretToken before instantiate."""
        await instantiate(graph, AWS, "AWS of the tenant")
        path = manifest(tmp_path / "m.json", [("odd", "AWS odd", KEY_ONLY), ("a", "AWS a", BOTH)])
        ledger = tmp_path / "l.jsonl"
        result = await run_engine(mock, path, ledger, monitor=False)
        assert result.statuses == {"done": 1, "failed": 1}
        assert result.failures[0]["code"] == "MissingCredentials"
        assert tenant_stats(mock)["created"]["applications"] == 2  # the tenant's and "a"
        assert ledger_mod.read(ledger).instances["odd"].ids == {}

    async def test_first_lacking_keys_still_meets_sync_template(
        self, mock: MockGraph, tmp_path: Path
    ) -> None:
        """A first instance lacking SecretToken, with the needs unknown, makes its application
        and fails at sync_template (the last line of defence); the others, whose keys differ
        from its own, wait until it has read the needs and are then done."""
        path = manifest(
            tmp_path / "m.json",
            [("odd", "AWS odd", KEY_ONLY), ("a", "AWS a", BOTH), ("b", "AWS b", BOTH)],
        )
        ledger = tmp_path / "l.jsonl"
        result = await run_engine(mock, path, ledger, monitor=False)
        assert result.statuses == {"done": 2, "failed": 1}
        assert result.failures[0]["key"] == "odd"
        assert result.failures[0]["code"] == "MissingCredentials"
        assert tenant_stats(mock)["applications"] == 3
        learned = position(ledger, "odd", "sync_template", "error")
        for key in ("a", "b"):
            assert position(ledger, key, "instantiate", "attempt") > learned

    async def test_waiting_instance_goes_on_when_the_first_ends_early(
        self, mock: MockGraph, graph: PlainGraph, tmp_path: Path
    ) -> None:
        """When the first instance of a template ends before it learns the needs (an app of its
        name from another template), the waiting odd one goes ahead instead of waiting for
        ever, and fails at sync_template."""
        slack = await instantiate(graph, "Slack", "AWS taken")
        path = manifest(
            tmp_path / "m.json", [("a", "AWS taken", BOTH), ("odd", "AWS odd", KEY_ONLY)]
        )
        result = await run_engine(mock, path, tmp_path / "l.jsonl", monitor=False)
        assert result.statuses == {"failed": 2}
        codes = {f["key"]: (f["step"], f["code"]) for f in result.failures}
        assert codes == {
            "a": ("instantiate", "OtherTemplate"),
            "odd": ("sync_template", "MissingCredentials"),
        }
        failure = next(f for f in result.failures if f["key"] == "a")
        assert slack["id"] in failure["message"]
        assert tenant_stats(mock)["applications"] == 2  # Slack's, and the odd one's


def run_actions(before: ledger_mod.Replay, after: ledger_mod.Replay) -> dict[str, str]:
    """What a run did with each instance, read from its ledger before and after."""
    origin = {"created": "create", "adopted": "adopt", "recovered": "adopt"}
    out = {}
    for key, st in after.instances.items():
        was = before.instances.get(key)
        if was is not None and was.finished:
            out[key] = "done"
        elif was is not None and was.ids.get("applicationId"):
            out[key] = "resume"
        elif st.origin is not None:
            out[key] = origin[st.origin]
        else:
            step = (st.final or {})["error"]["step"]
            out[key] = "conflict" if step == "instantiate" else "refuse"
    return out


class TestPlanIsTheRun:
    async def test_mixed_manifest(self, mock: MockGraph, graph: PlainGraph, tmp_path: Path) -> None:
        """For done, resume, adopt, create, conflict from another template and refuse, plan's
        decision for each instance is what the run then does."""
        ledger = tmp_path / "l.jsonl"
        bad = {"ClientSecret": "file:secrets/bad-key", "SecretToken": "file:secrets/secret"}
        first = manifest(
            tmp_path / "first.json", [("done", "AWS done", BOTH), ("resume", "AWS resume", bad)]
        )
        result = await run_engine(mock, first, ledger, monitor=False)
        assert result.statuses == {"done": 1, "failed": 1}  # resume: the target refused it
        adopted = await instantiate(graph, AWS, "AWS adopt")
        await instantiate(graph, "Slack", "AWS taken")
        path = manifest(
            tmp_path / "second.json",
            [
                ("done", "AWS done", BOTH),
                ("resume", "AWS resume", bad),
                ("adopt", "AWS adopt", BOTH),
                ("create", "AWS create", BOTH),
                ("conflict", "AWS taken", BOTH),
                ("refuse", "AWS refuse", KEY_ONLY),
            ],
        )
        code, rows = await plan(mock, tmp_path, path, "--ledger", str(ledger))
        planned = {k: r["action"] for k, r in rows.items()}
        assert planned == {
            "done": "done",
            "resume": "resume",
            "adopt": "adopt",
            "create": "create",
            "conflict": "conflict",
            "refuse": "refuse",
        }
        assert code == 1 and rows["adopt"]["applicationId"] == adopted["id"]

        before = ledger_mod.read(ledger)
        result = await run_engine(mock, path, ledger, monitor=False)
        after = ledger_mod.read(ledger)
        assert run_actions(before, after) == planned
        codes = {f["key"]: f["code"] for f in result.failures}
        assert codes == {
            "resume": "AWSInvalidCredentials",
            "conflict": rows["conflict"]["code"],
            "refuse": rows["refuse"]["code"],
        }
        assert after.instances["adopt"].ids["applicationId"] == adopted["id"]
