"""``bulkprov cleanup``: a run undone over real HTTP against the mock, idempotently."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bulkprov import ledger as ledger_mod
from bulkprov.commands.status import status_summary
from bulkprov.mockgraph import MockGraph

from .enginekit import aws_manifest, run_engine, tenant_stats
from .graphclient import PlainGraph
from .opskit import cleanup, cli, deletes, snapshot

pytestmark = pytest.mark.anyio
AWS_TEMPLATE = "8b1025e4-1dd2-430b-a150-2ef79cd700f5"


async def instantiate(graph: PlainGraph, name: str) -> dict[str, str]:
    r = await graph.post(f"/applicationTemplates/{AWS_TEMPLATE}/instantiate", {"displayName": name})
    assert r.status == 201, r.body
    return {"app": r.body["application"]["id"], "sp": r.body["servicePrincipal"]["id"]}


def records(ledger: Path, kind: str) -> list[dict[str, object]]:
    return [r for r in map(orjson.loads, ledger.read_bytes().splitlines()) if r["type"] == kind]


class TestCleanup:
    async def test_cleanup_leaves_the_tenant_as_before_the_run(
        self, mock: MockGraph, graph: PlainGraph, tmp_path: Path
    ) -> None:
        """After a run and its cleanup, Graph lists the same applications, service principals
        and jobs as before the run, with no orphan; the ledger marks every instance removed."""
        other = await instantiate(graph, "Someone else's app")
        before = await snapshot(graph)
        ledger = tmp_path / "l.jsonl"
        result = await run_engine(mock, aws_manifest(tmp_path / "m.csv", 6), ledger)
        assert result.statuses["done"] == 6, result.failures[:3]
        during = await snapshot(graph)
        assert len(during["applications"]) == 7
        plan, done = await cleanup(mock, ledger)
        assert plan.counts() == {"job": 6, "servicePrincipal": 6, "application": 6}
        assert done.ok and done.removed == 6
        assert done.deleted == {"job": 6, "servicePrincipal": 6, "application": 6}
        assert await snapshot(graph) == before
        assert other["app"] in before["applications"]
        t = tenant_stats(mock)
        assert t["orphanApplications"] == 0
        # the unrelated app never had a job: its service principal was an "orphan" before too
        assert t["orphanServicePrincipals"] == 1
        assert t["deletedApplications"] == 6  # soft-deleted: restorable for 30 days
        summary = status_summary(ledger_mod.read(ledger))
        assert summary["statuses"] == {"removed": 6}
        assert summary["commands"] == {"cleanup": 1}
        assert all(r["applicationId"] is None for r in summary["rows"])

        # --purge later deletes them from deletedItems too, and only them
        plan, purged = await cleanup(mock, ledger, purge=True)
        assert plan.counts() == {"deletedItem": 12}
        assert purged.ok and purged.deleted == {"deletedItem": 12}
        assert tenant_stats(mock)["deletedApplications"] == 0
        assert await snapshot(graph) == before

    async def test_purge_in_one_go(
        self, mock: MockGraph, graph: PlainGraph, tmp_path: Path
    ) -> None:
        """With purge, one cleanup deletes and purges: nothing is left to restore."""
        ledger = tmp_path / "l.jsonl"
        await run_engine(
            mock, aws_manifest(tmp_path / "m.csv", 2, start=False), ledger, monitor=False
        )
        plan, done = await cleanup(mock, ledger, purge=True)
        assert done.ok and done.deleted["deletedItem"] == 4
        t = tenant_stats(mock)
        assert t["applications"] == 0 and t["deletedApplications"] == 0
        deleted_sp = await graph.get(f"/directory/deletedItems/{plan.targets[0].objects[1][1]}")
        assert deleted_sp.status == 404

    async def test_adopted_applications_are_kept_unless_asked(
        self, mock: MockGraph, graph: PlainGraph, tmp_path: Path
    ) -> None:
        """An application the run adopted survives cleanup (only the job the run made on it
        goes); --include-adopted deletes it too."""
        adopted = await instantiate(graph, "AWS acct 00001")
        before = await snapshot(graph)
        ledger = tmp_path / "l.jsonl"
        result = await run_engine(mock, aws_manifest(tmp_path / "m.csv", 3), ledger)
        assert result.statuses["done"] == 3
        plan, done = await cleanup(mock, ledger)
        assert [(k.key, k.application_id, k.why) for k in plan.kept] == [
            ("acct-00001", adopted["app"], "adopted")
        ]
        assert done.deleted == {"job": 3, "servicePrincipal": 2, "application": 2}
        assert await snapshot(graph) == before  # the adopted app had no job before the run
        replay = ledger_mod.read(ledger)
        assert replay.instances["acct-00001"].status == "done"
        assert replay.instances["acct-00000"].status == "removed"

        # nothing more to do without the flag: no request at all
        plan, again = await cleanup(mock, ledger)
        assert plan.targets == [] and again.deleted == {}

        plan, done = await cleanup(mock, ledger, include_adopted=True)
        assert done.deleted == {"servicePrincipal": 1, "application": 1}
        after = await snapshot(graph)
        assert adopted["app"] not in after["applications"]
        assert after["applications"] == sorted(set(before["applications"]) - {adopted["app"]})


class TestIdempotence:
    async def test_interrupted_cleanup_resumes_and_a_rerun_sends_nothing(
        self, mock: MockGraph, graph: PlainGraph, tmp_path: Path
    ) -> None:
        """A cleanup stopped after a few deletions leaves a consistent ledger; the next one
        deletes exactly the rest (no 404, no second DELETE), and a third sends no DELETE."""
        before = await snapshot(graph)
        ledger = tmp_path / "l.jsonl"
        await run_engine(mock, aws_manifest(tmp_path / "m.csv", 5), ledger)
        plan, first = await cleanup(mock, ledger, concurrency=1, stop_after=4)
        assert first.interrupted
        assert sum(first.deleted.values()) == 4
        mid = await snapshot(graph)
        assert mid != before and len(mid["applications"]) > len(before["applications"])
        replay = ledger_mod.read(ledger)
        assert sum(len(s.removed) for s in replay.instances.values()) == 4

        plan, second = await cleanup(mock, ledger)
        assert second.ok and sum(second.deleted.values()) == 15 - 4 and not second.gone
        assert await snapshot(graph) == before
        sent = deletes(mock)
        assert sum(sum(v.values()) for v in sent.values()) == 15
        assert all(set(v) == {"204"} for v in sent.values()), sent

        plan, third = await cleanup(mock, ledger)
        assert plan.targets == [] and not third.deleted and not third.gone
        assert deletes(mock) == sent

    async def test_deletions_the_ledger_missed_count_as_gone(
        self, mock: MockGraph, graph: PlainGraph, tmp_path: Path
    ) -> None:
        """If a crash loses the cleanup records after Graph deleted the objects, the rerun's
        DELETEs answer 404, which counts as already deleted: no error, every instance closed."""
        before = await snapshot(graph)
        ledger = tmp_path / "l.jsonl"
        await run_engine(
            mock, aws_manifest(tmp_path / "m.csv", 3, start=False), ledger, monitor=False
        )
        size = ledger.stat().st_size
        await cleanup(mock, ledger)
        with ledger.open("r+b") as fh:
            fh.truncate(size)  # as if no cleanup record had reached the disk
        _plan, again = await cleanup(mock, ledger)
        assert again.ok and not again.deleted
        assert sum(again.gone.values()) == 9 and again.removed == 3
        assert await snapshot(graph) == before
        assert {s.status for s in ledger_mod.read(ledger).instances.values()} == {"removed"}

    async def test_lost_instantiate_is_found_and_deleted(
        self, mock: MockGraph, graph: PlainGraph, tmp_path: Path
    ) -> None:
        """An instantiate whose answer never reached the ledger left an application with no id
        recorded: cleanup finds it by template and name, like a resumed run, and deletes it."""
        before = await snapshot(graph)
        ledger = tmp_path / "l.jsonl"
        await run_engine(
            mock, aws_manifest(tmp_path / "m.csv", 1, start=False), ledger, monitor=False
        )
        header = orjson.loads(ledger.read_bytes().splitlines()[0])
        lost = await instantiate(graph, "AWS lost one")
        with ledger.open("ab") as fh:
            fh.write(
                orjson.dumps(
                    {
                        "type": "step",
                        "key": "lost",
                        "step": "instantiate",
                        "event": "attempt",
                        "attempt": 1,
                        "displayName": "AWS lost one",
                        "templateId": AWS_TEMPLATE,
                    }
                )
                + b"\n"
            )
        assert header["type"] == "header"
        plan, done = await cleanup(mock, ledger)
        found = [t for t in plan.targets if t.key == "lost"]
        assert found and found[0].found
        assert found[0].objects == [("servicePrincipal", lost["sp"]), ("application", lost["app"])]
        assert done.ok and done.removed == 2
        assert await snapshot(graph) == before


class TestCommand:
    async def test_refused_prompt_keeps_everything(
        self, mock: MockGraph, graph: PlainGraph, tmp_path: Path
    ) -> None:
        """Without --yes the command lists what it would delete and asks; answering no deletes
        nothing and writes nothing to the ledger."""
        ledger = tmp_path / "l.jsonl"
        await run_engine(
            mock, aws_manifest(tmp_path / "m.csv", 7, start=False), ledger, monitor=False
        )
        during = await snapshot(graph)
        size = ledger.stat().st_size
        code, _out, err = await cli(mock, tmp_path, "cleanup", str(ledger), stdin=b"n\n")
        assert code == 1, err
        assert "7 jobs, 7 service principals, 7 applications" in err
        assert "AWS acct 00000" in err and "and 2 more instances" in err
        assert "Delete them? [y/N]" in err and "nothing deleted" in err
        assert deletes(mock) == {}
        assert await snapshot(graph) == during
        assert ledger.stat().st_size == size

        code, _out, err = await cli(mock, tmp_path, "cleanup", str(ledger), "--dry-run")
        assert code == 0 and "AWS acct 00006" in err and "dry run" in err
        assert deletes(mock) == {}

    async def test_yes_deletes_and_status_shows_it(
        self, mock: MockGraph, graph: PlainGraph, tmp_path: Path
    ) -> None:
        """``cleanup --yes`` deletes without asking; a second one has nothing to do."""
        before = await snapshot(graph)
        ledger = tmp_path / "l.jsonl"
        await run_engine(
            mock, aws_manifest(tmp_path / "m.csv", 2, start=False), ledger, monitor=False
        )
        code, _out, err = await cli(mock, tmp_path, "cleanup", str(ledger), "--yes")
        assert code == 0, err
        assert "2 instance(s) removed" in err
        assert await snapshot(graph) == before
        code, _out, err = await cli(mock, tmp_path, "cleanup", str(ledger), "--yes")
        assert code == 0 and "nothing to delete" in err
        assert status_summary(ledger_mod.read(ledger))["statuses"] == {"removed": 2}

    async def test_a_ledger_of_another_tenant_is_refused(
        self, mock: MockGraph, tmp_path: Path
    ) -> None:
        """A ledger written against another tenant is refused before any deletion."""
        ledger = tmp_path / "l.jsonl"
        await run_engine(
            mock, aws_manifest(tmp_path / "m.csv", 1, start=False), ledger, monitor=False
        )
        lines = ledger.read_bytes().splitlines()
        header = orjson.loads(lines[0])
        header["tenant"] = "00000000-0000-0000-0000-000000000001"
        ledger.write_bytes(b"\n".join([orjson.dumps(header), *lines[1:]]) + b"\n")
        code, _out, err = await cli(mock, tmp_path, "cleanup", str(ledger), "--yes")
        assert code == 2
        assert "records a run against tenant '00000000-0000-0000-0000-000000000001'" in err
        assert deletes(mock) == {}
        assert tenant_stats(mock)["applications"] == 1


async def test_run_after_cleanup_sets_the_instances_up_anew(
    mock: MockGraph, graph: PlainGraph, tmp_path: Path
) -> None:
    """A removed instance is not finished: running the manifest again with the same ledger
    creates its objects anew instead of reusing the deleted ids."""
    ledger, manifest = tmp_path / "l.jsonl", aws_manifest(tmp_path / "m.csv", 2, start=False)
    await run_engine(mock, manifest, ledger, monitor=False)
    old = {k: s.ids["applicationId"] for k, s in ledger_mod.read(ledger).instances.items()}
    await cleanup(mock, ledger)
    result = await run_engine(mock, manifest, ledger, monitor=False)
    assert result.statuses["done"] == 2 and result.skipped == 0
    new = {k: s.ids["applicationId"] for k, s in ledger_mod.read(ledger).instances.items()}
    assert set(new) == set(old) and not set(new.values()) & set(old.values())
    assert sorted(new.values()) == (await snapshot(graph))["applications"]
    # and a cleanup after that deletes the new ones
    _plan, done = await cleanup(mock, ledger)
    assert done.deleted["application"] == 2 and (await snapshot(graph))["applications"] == []
