"""Instances that share a display name never share an application: every interleaving of
their lookups and of their instantiate answers (in order, late, or lost) ends with one
application per instance, each held by exactly one of them.

The interleavings are driven, not left to luck: a scripted Graph creates each application
when its POST arrives and holds the answer until the test releases it (or loses it), and the
test enumerates the orders in which instances start and answers come back, letting every task
run until it blocks between two moves (``wait_all_tasks_blocked``)."""

from __future__ import annotations

import contextvars
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from anyio import wait_all_tasks_blocked

from bulkprov import ledger as ledger_mod
from bulkprov.errors import TransportError
from bulkprov.ledger import InstanceState, Ledger, Redactor
from bulkprov.manifest import Instance
from bulkprov.mockgraph import MockGraph
from bulkprov.pipeline import Outcome, Pipeline, ResolvedTemplate
from bulkprov.settings import RunSettings
from bulkprov.steps.instantiate import Instantiate

from .enginekit import aws_manifest, run_engine, tenant_stats

pytestmark = pytest.mark.anyio

TEMPLATE = ResolvedTemplate("8b1025e4-1dd2-430b-a150-2ef79cd700f5", "AWS Single-Account Access")
NAME = "AWS shared"


CURRENT: contextvars.ContextVar[str] = contextvars.ContextVar("instance")


class ScriptedGraph:
    """The calls instantiate makes, against a tenant the test can see; each POST creates its
    application at once and waits for the test to deliver (or lose) its answer."""

    def __init__(self) -> None:
        self.apps: list[dict[str, Any]] = []
        self.pending: dict[str, tuple[anyio.Event, list[bool]]] = {}  # key -> (go, [lost])
        self._n = 0

    async def find_applications(self, template_id: str, display_name: str) -> list[Any]:
        await anyio.lowlevel.checkpoint()
        return [dict(a) for a in self.apps]

    async def instantiate(self, template_id: str, display_name: str) -> tuple[Any, Any]:
        self._n += 1
        n = self._n
        app = {
            "id": f"app-{n:03d}",
            "appId": f"appid-{n:03d}",
            "displayName": display_name,
            "createdDateTime": f"2026-01-01T00:00:{n:02d}Z",
        }
        self.apps.append(app)
        go, lost = anyio.Event(), [False]
        self.pending[CURRENT.get()] = (go, lost)
        await go.wait()
        if lost[0]:
            raise TransportError("POST", "/applicationTemplates/x/instantiate", "timeout")
        return dict(app), {"id": f"sp-{n:03d}", "appId": app["appId"]}

    async def service_principal_by_app_id(self, app_id: str) -> dict[str, Any]:
        await anyio.lowlevel.checkpoint()
        return {"id": "sp-" + app_id.removeprefix("appid-"), "appId": app_id}

    async def delete_application(self, app_id: str) -> None:
        self.apps = [a for a in self.apps if a["id"] != app_id]


def _instance(i: int) -> Instance:
    return Instance(
        key=f"k{i}",
        display_name=NAME,
        template=TEMPLATE.display_name,
        sync_template=None,
        credentials=(),
        start=False,
        validate=False,
        profile=None,
        file="m.csv",
        line=i + 2,
    )


def _pipeline(graph: ScriptedGraph, tmp_path: Path) -> Pipeline:
    ledger = Ledger(tmp_path / "l.jsonl")
    replay = ledger.open(manifest="m.csv", graph="g", tenant="t")
    settings = RunSettings(concurrency=8, poll_interval=1.0, replication_deadline=5.0)
    return Pipeline(
        graph,
        ledger,
        replay,
        settings,  # type: ignore[arg-type]
        templates={TEMPLATE.display_name: TEMPLATE},
        time_scale=0.0001,
        redactor=Redactor(),
        shared_names={NAME.casefold()},
    )


async def _play(
    choices: list[int],
    tmp_path: Path,
    count: int,
    lose: int | None,
) -> tuple[dict[str, str], ScriptedGraph, list[int]]:
    """Run ``count`` same-name instances through instantiate. At each point where every task
    is blocked, the enabled moves are: start the next instance, or deliver the answer of one
    pending POST (lost, the first time, for instance ``lose``); ``choices`` picks among them
    (0 past its end). Returns key -> application held, the tenant, and how many moves were
    enabled at each point (for the enumeration)."""
    graph = ScriptedGraph()
    pipeline = _pipeline(graph, tmp_path)
    held: dict[str, str] = {}
    widths: list[int] = []
    lost_once = False

    async def one(i: int) -> None:
        inst = _instance(i)
        CURRENT.set(inst.key)
        out = Outcome(inst=inst, state=InstanceState(inst.key), started_at=0.0)
        data = await Instantiate().run(pipeline.context(out))
        held[inst.key] = data.ids.application_id

    started = 0
    async with anyio.create_task_group() as tg:
        with anyio.fail_after(30):
            while len(held) < count:
                await wait_all_tasks_blocked()
                moves = (["start"] if started < count else []) + sorted(
                    k for k, (go, _l) in graph.pending.items() if not go.is_set()
                )
                if not moves:  # only sleepers (a settle wait): let time pass
                    await anyio.sleep(0.001)
                    continue
                widths.append(len(moves))
                step = len(widths) - 1
                move = moves[choices[step] if step < len(choices) else 0]
                if move == "start":
                    tg.start_soon(one, started)
                    started += 1
                    continue
                go, lost = graph.pending.pop(move)
                if lose is not None and move == f"k{lose}" and not lost_once:
                    lost[0] = lost_once = True
                go.set()
        tg.cancel_scope.cancel()
    pipeline.ledger.close()
    return held, graph, widths


async def _every_interleaving(tmp_path: Path, count: int, lose: int | None) -> int:
    """Enumerate every sequence of choices depth-first; check each run. Returns how many."""
    runs = 0
    stack: list[list[int]] = [[]]
    while stack:
        choices = stack.pop()
        sub = tmp_path / f"{lose}-{runs}"
        sub.mkdir()
        held, graph, widths = await _play(choices, sub, count, lose)
        runs += 1
        apps = sorted(held.values())
        assert len(set(apps)) == count, (choices, held)
        assert sorted(a["id"] for a in graph.apps) == apps, (choices, held, graph.apps)
        # branch on every point past the prefix this run was told
        for point in range(len(choices), len(widths)):
            pad = [0] * (point - len(choices))
            stack.extend([*choices, *pad, alt] for alt in range(1, widths[point]))
    return runs


@pytest.mark.parametrize("lose", [None, 0, 1])
async def test_every_interleaving_gives_one_application_per_instance(
    tmp_path: Path, lose: int | None
) -> None:
    """Three same-name instances, in every order of starts and answers (and with one answer
    lost): each ends holding its own application, no application is held twice, and every
    application Graph made is held by one of them."""
    runs = await _every_interleaving(tmp_path, 3, lose)
    assert runs > 1  # the enumeration explored more than one order


class TestOverHttp:
    async def test_late_instantiate_answer_does_not_share_an_application(
        self, mock: MockGraph, tmp_path: Path
    ) -> None:
        """Four instances of one name, two at a time, the first instantiate answered late (but
        within the client's timeout): four applications, one per instance, none claimed twice."""
        mock.update_settings({"faults": {"slow_burst": {"instantiate": 1}, "slow_delay": 20.0}})
        manifest = aws_manifest(tmp_path / "m.csv", 4, start=False)
        text = manifest.read_text()
        for i in range(1, 4):
            text = text.replace(f"AWS acct {i:05d}", "AWS acct 00000")
        manifest.write_text(text)
        ledger = tmp_path / "l.jsonl"
        result = await run_engine(mock, manifest, ledger, monitor=False, concurrency=2)
        assert result.statuses["done"] == 4, result.failures
        stats = tenant_stats(mock)
        assert stats["applications"] == 4  # (the mock counts same-name apps as duplicates)
        held = [s.ids["applicationId"] for s in ledger_mod.read(ledger).instances.values()]
        assert len(held) == 4 and len(set(held)) == 4

    async def test_many_same_name_instances_each_get_their_own(
        self, mock: MockGraph, tmp_path: Path
    ) -> None:
        """120 instances of one name, 40 at a time, one in ten instantiates answered late or
        lost: every application the tenant has is held by exactly one instance."""
        mock.update_settings(
            {
                "faults": {
                    "slow_rate": {"instantiate": 0.1},
                    "slow_delay": 5.0,
                    "drop_rate": {"instantiate": 0.05},
                }
            }
        )
        n = 120
        lines = ["key,displayName,template,start,validate"]
        lines += [f"k{i:03d},AWS same,AWS Single-Account Access,false,false" for i in range(n)]
        manifest = tmp_path / "m.csv"
        manifest.write_text("\n".join(lines) + "\n")
        ledger = tmp_path / "l.jsonl"
        result = await run_engine(mock, manifest, ledger, monitor=False, concurrency=40)
        assert result.statuses["done"] == n, result.failures[:3]
        held = [s.ids["applicationId"] for s in ledger_mod.read(ledger).instances.values()]
        assert len(set(held)) == n
        assert tenant_stats(mock)["applications"] == n
