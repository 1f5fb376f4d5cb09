"""``run --prune``: delete the instances the ledger has and the manifest no longer lists, the way
``cleanup`` does (:mod:`bulkprov.cleanup`'s engine: job, service principal, application, in
that order; an application the run adopted is kept, only the jobs the run created on it are
deleted; every deletion recorded in the ledger). Never without being told: asked first unless
``--yes``, and refused without a terminal to ask on."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from rich.console import Console

from . import cleanup as cleanup_mod
from .client import GraphClient
from .display import printable
from .graph import Graph
from .ledger import Ledger, Replay
from .manifest import iter_instances
from .refs import RefRules
from .updates import removed

SHOWN = 5


@dataclass(slots=True)
class PruneResult:
    instances: int = 0  # removed from the manifest, with objects to delete
    confirmed: bool = True
    result: cleanup_mod.CleanupResult | None = None
    keys: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.confirmed and (self.result is None or not self.result.errors)


def _ask(console: Console, count: int) -> bool:
    if not sys.stdin.isatty():
        console.print(
            f"--prune: {count} instance(s) to delete and no terminal to ask on: pass --yes "
            "to delete them; nothing deleted",
            markup=False,
        )
        return False
    console.print("Delete them? [y/N] ", end="", markup=False)
    try:
        answer = sys.stdin.readline()
    except (OSError, ValueError):
        answer = ""
    return answer.strip().lower() in ("y", "yes")


async def prune(
    graph: Graph,
    ledger_path: Path,
    keys: Collection[str],
    *,
    ledger_graph: str,
    tenant: str,
    console: Console,
    yes: bool = False,
    concurrency: int = 16,
) -> PruneResult:
    """Delete the objects of the ledger's instances not in ``keys`` (the manifest's), holding
    the ledger's lock (as ``cleanup``) from the plan to the last deletion."""
    ledger = Ledger(ledger_path)
    replay = ledger.prepare(
        manifest=None, graph=ledger_graph, tenant=tenant, command="cleanup", create=False
    )
    try:
        gone = {st.key: st for st in removed(replay, set(keys))}
        sub = Replay(replay.header, gone, replay.runs, False)
        p = cleanup_mod.plan(sub)
        await cleanup_mod.resolve_lookups(graph, p, sub)
        out = PruneResult(instances=len(p.targets), keys=[t.key for t in p.targets])
        if not p.targets:
            return out
        console.print(
            f"--prune: {len(p.targets)} instance(s) are no longer in the manifest: "
            + ", ".join(printable(f"{t.key} ({t.name})") for t in p.targets[:SHOWN])
            + (f" and {len(p.targets) - SHOWN} more" if len(p.targets) > SHOWN else ""),
            markup=False,
        )
        if not yes and not await anyio.to_thread.run_sync(_ask, console, len(p.targets)):
            out.confirmed = False
            return out
        ledger.begin()
        out.result = await cleanup_mod.Cleaner(graph, ledger, concurrency=concurrency).run(p)
        return out
    finally:
        ledger.close()


async def run_prune(
    args: argparse.Namespace,
    client: GraphClient,
    ledger_graph: str,
    rules: RefRules,
    console: Console,
) -> bool:
    """``run --prune`` after the run: what it deleted, on the console; False when something
    was not deleted (not confirmed, a deletion failed)."""
    keys = {
        i.key
        for i in iter_instances(
            args.manifest, allow_inline_secrets=args.allow_inline_secrets, rules=rules
        )
    }
    out = await prune(
        Graph(client),
        args.ledger,
        keys,
        ledger_graph=ledger_graph,
        tenant=client.conn.tenant_id,
        console=console,
        yes=args.yes,
    )
    if out.result is not None:
        r = out.result
        console.print(
            f"--prune: {r.removed} instance(s) removed ("
            + ", ".join(f"{n} {k}" for k, n in sorted(r.deleted.items()))
            + f"); {len(r.errors)} deletion(s) failed",
            markup=False,
        )
    elif not out.confirmed:
        console.print("--prune: not confirmed: nothing deleted", markup=False)
    return out.ok
