"""Helpers for the day-2 command tests: tenant snapshots, cleanup and monitor over real HTTP."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import orjson

from bulkprov import cleanup as cleanup_mod
from bulkprov import ledger as ledger_mod
from bulkprov.client import GraphClient
from bulkprov.graph import Graph
from bulkprov.mockgraph import MockGraph
from bulkprov.mockgraph.server import write_info
from bulkprov.monitor import Monitor, MonitorSettings
from bulkprov.settings import ClientSettings

from .enginekit import connection
from .graphclient import PlainGraph


async def snapshot(graph: PlainGraph) -> dict[str, Any]:
    """The tenant's live applications, service principals and jobs, as Graph lists them."""
    apps = await graph.get("/applications", params={"$select": "id,displayName", "$top": "999"})
    sps = await graph.get("/servicePrincipals", params={"$select": "id", "$top": "999"})
    assert apps.status == 200 and sps.status == 200
    assert "@odata.nextLink" not in apps.body and "@odata.nextLink" not in sps.body
    jobs: dict[str, list[str]] = {}
    for sp in sps.body["value"]:
        r = await graph.get(f"/servicePrincipals/{sp['id']}/synchronization/jobs")
        assert r.status == 200, r.body
        jobs[sp["id"]] = sorted(j["id"] for j in r.body["value"])
    return {
        "applications": sorted(a["id"] for a in apps.body["value"]),
        "servicePrincipals": sorted(s["id"] for s in sps.body["value"]),
        "jobs": jobs,
    }


def deletes(mock: MockGraph) -> dict[str, dict[str, int]]:
    """DELETE requests the mock answered, by route and status."""
    return {k: v for k, v in mock.stats()["byRoute"].items() if k.startswith("DELETE ")}


async def cleanup(
    mock: MockGraph,
    ledger: Path,
    *,
    include_adopted: bool = False,
    purge: bool = False,
    concurrency: int = 4,
    stop_after: int | None = None,
) -> tuple[cleanup_mod.CleanupPlan, cleanup_mod.CleanupResult]:
    """What ``bulkprov cleanup --yes`` does, in-process; ``stop_after`` deletions, then drain."""
    settings = ClientSettings(time_scale=mock.settings.time_scale)
    async with GraphClient(connection(mock), settings) as client:
        graph = Graph(client)
        replay = ledger_mod.read(ledger)
        plan = cleanup_mod.plan(replay, include_adopted=include_adopted, purge=purge)
        await cleanup_mod.resolve_lookups(graph, plan, replay, purge=purge)
        lg = ledger_mod.Ledger(ledger)
        lg.open(
            manifest=None,
            graph=client.conn.base_url,
            tenant=client.conn.tenant_id,
            command="cleanup",
            create=False,
        )
        seen: list[str] = []
        cleaner: cleanup_mod.Cleaner | None = None

        def counted(key: str, kind: str, event: str) -> None:
            seen.append(kind)
            if stop_after is not None and len(seen) >= stop_after and cleaner is not None:
                cleaner.request_stop()

        try:
            cleaner = cleanup_mod.Cleaner(graph, lg, concurrency=concurrency, on_deleted=counted)
            result = await cleaner.run(plan)
        finally:
            lg.close()
        return plan, result


async def monitor(mock: MockGraph, ledger: Path, **settings: Any) -> tuple[list[Any], Monitor]:
    """What ``bulkprov monitor`` does, in-process (``restart=True`` records in the ledger)."""
    async with GraphClient(
        connection(mock), ClientSettings(time_scale=mock.settings.time_scale)
    ) as client:
        replay = ledger_mod.read(ledger)
        lg = None
        if settings.get("restart"):
            lg = ledger_mod.Ledger(ledger)
            lg.open(
                manifest=None,
                graph=client.conn.base_url,
                tenant=client.conn.tenant_id,
                command="monitor",
                create=False,
            )
        try:
            m = Monitor(Graph(client), replay, MonitorSettings(**settings), ledger=lg)
            return await m.run(), m
        finally:
            if lg is not None:
                lg.close()


async def break_target(graph: PlainGraph, sp_id: str, broken: bool = True) -> None:
    """The mock's control knob: the target of ``sp_id`` rejects (or accepts again) its secrets."""
    assert graph.session is not None
    async with graph.session.post(
        f"{graph.info.graph_url}/_mock/control",
        ssl=graph.ssl,
        data=orjson.dumps(
            {"action": "break_target", "servicePrincipalId": sp_id, "broken": broken}
        ),
    ) as resp:
        assert resp.status == 200, await resp.text()


async def wait_for_job(
    graph: PlainGraph,
    sp_id: str,
    job_id: str,
    done: Callable[[dict[str, Any]], bool],
    *,
    polls: int = 400,
) -> None:
    """Poll a job until ``done(status)`` (the mock plays job cycles as time passes)."""
    status: dict[str, Any] = {}
    for _ in range(polls):
        r = await graph.get(f"/servicePrincipals/{sp_id}/synchronization/jobs/{job_id}")
        status = r.body.get("status") or {}
        if done(status):
            return
        await anyio.sleep(0.02)
    raise AssertionError(f"the job never got there: {status}")


async def cli(mock: MockGraph, tmp: Path, *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    """``bulkprov ARGS --mock-info ...`` as a separate process against the running mock."""
    info_file = tmp / "mock-info.json"
    if not info_file.exists():
        assert mock.info is not None
        write_info(info_file, mock.info)
    proc = await anyio.run_process(
        [sys.executable, "-m", "bulkprov.cli", *args, "--mock-info", str(info_file)],
        input=stdin,
        check=False,
        env={**os.environ, "COLUMNS": "240"},
    )
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()
