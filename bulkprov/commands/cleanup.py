"""``bulkprov cleanup``: delete what the runs of a ledger created (:mod:`bulkprov.cleanup`),
after showing what and asking; a first SIGINT stops after the deletions in flight."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import anyio
from rich.console import Console
from rich.table import Table

from .. import cleanup as cleanup_mod
from .. import ledger as ledger_mod
from ..cliconnect import connection_options
from ..display import cell, printable
from ..exitcodes import ExitCode
from ..log import configure
from ..progress import TaskProgress
from ..redact import shorten
from ..tenancy import describe
from .common import client_stats, read_ledger, stop_on_signals
from .tenants import Connections, connections

KIND_LABELS = {
    cleanup_mod.JOB: "jobs",
    cleanup_mod.SP: "service principals",
    cleanup_mod.APP: "applications",
    cleanup_mod.DELETED: "purged from deletedItems",
}

# the per-tenant table's columns: objects deleted
SHORT_LABELS = {
    cleanup_mod.JOB: "jobs",
    cleanup_mod.SP: "SPs",
    cleanup_mod.APP: "apps",
    cleanup_mod.DELETED: "purged",
}

SHOWN = 5  # names listed in the confirmation prompt
# what a first SIGINT or SIGTERM starts
STOPPING = "stopping - deletions in flight finish and are recorded; run cleanup again to finish"


def _describe(p: cleanup_mod.CleanupPlan) -> str:
    counts = p.counts()
    parts = [f"{counts[k]} {label}" for k, label in KIND_LABELS.items() if counts[k]]
    return ", ".join(parts) or "nothing"


def _print_plan(console: Console, p: cleanup_mod.CleanupPlan, *, full: bool) -> None:
    shown = p.targets if full else p.targets[:SHOWN]
    for t in shown:
        what = ", ".join(f"{kind} {i}" for kind, i in t.objects) or "nothing left"
        if t.purge:
            what += f"; purge {len(t.purge)}"
        note = " (found by name: its instantiate answer was lost)" if t.found else ""
        where = f"[{t.profile}] " if t.profile is not None else ""
        console.print(printable(f"  {where}{t.key}  {t.name}: {what}{note}"), markup=False)
    if len(p.targets) > len(shown):
        console.print(
            f"  ... and {len(p.targets) - len(shown)} more instances (--dry-run lists all)"
        )
    if p.kept:
        names = ", ".join(printable(k.name) for k in p.kept[:SHOWN])
        more = f" and {len(p.kept) - SHOWN} more" if len(p.kept) > SHOWN else ""
        console.print(
            f"keeping {len(p.kept)} application(s) the run did not create ({names}{more}); "
            "their jobs created by the run are deleted; --include-adopted deletes the "
            "applications too",
            markup=False,
        )


def _confirm(console: Console) -> bool:
    console.print("Delete them? [y/N] ", end="", markup=False)
    try:
        answer = sys.stdin.readline()
    except (OSError, ValueError):
        answer = ""
    if not sys.stdin.isatty():
        console.print(answer.strip(), markup=False)  # what a pipe answered, for the record
    return answer.strip().lower() in ("y", "yes")


def cmd_cleanup(args: argparse.Namespace) -> int:
    configure(console_level=("warning", "info", "debug")[min(args.verbose, 2)])
    console = Console(stderr=True, highlight=False)
    replay = read_ledger(args.ledger)
    opts = connection_options(args)

    async def main() -> int:
        async with connections(opts, args.ledger, replay, args.only_tenants) as conns:
            ledger = ledger_mod.Ledger(args.ledger, fsync=args.fsync)
            plan_from = replay
            if not args.dry_run:
                # locked before anything is planned: a second cleanup (or a run) of this
                # ledger is refused at once, and the plan is made from what the lock holds
                plan_from = ledger.prepare(
                    manifest=None, command="cleanup", create=False, **conns.ledger_target()
                )
            try:
                return await _cleanup(args, console, conns, ledger, plan_from)
            finally:
                ledger.close()

    return anyio.run(main)


def _where(conns: Connections, replay: ledger_mod.Replay) -> str:
    """``tenant <id>, <label>``, or the tenants of a run across many."""
    if conns.multi:
        return conns.label
    header = replay.header
    return f"tenant {header.tenant if header else None}, {conns.label}"


async def _cleanup(
    args: argparse.Namespace,
    console: Console,
    conns: Connections,
    ledger: ledger_mod.Ledger,
    replay: ledger_mod.Replay,
) -> int:
    p = cleanup_mod.plan(
        replay,
        include_adopted=args.include_adopted,
        purge=args.purge,
        profiles=conns.profiles if conns.multi else None,
    )
    graphs = conns.graphs()
    await cleanup_mod.resolve_lookups(graphs, p, replay, purge=args.purge)
    console.print(
        f"bulkprov cleanup of {args.ledger} ({_where(conns, replay)}): "
        f"{len(p.targets)} instance(s), {_describe(p)}",
        markup=False,
    )
    if not p.targets:
        console.print("nothing to delete")
        return ExitCode.OK
    _print_plan(console, p, full=args.dry_run)
    if conns.multi:
        _print_plan_tenants(console, p, conns.profiles)
    if args.dry_run:
        console.print("dry run: nothing deleted")
        return ExitCode.OK
    if not args.yes and not await anyio.to_thread.run_sync(_confirm, console):
        console.print("not confirmed: nothing deleted")
        return ExitCode.FAILED
    ledger.begin()
    progress = TaskProgress(
        "cleanup", "instances", console, total=len(p.targets), interval=args.progress_every
    )
    cleaner = cleanup_mod.Cleaner(
        graphs if conns.multi else conns.first.graph,
        ledger,
        concurrency=args.concurrency,
        on_target=lambda _key, ok: progress.advance(ok),
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(stop_on_signals, cleaner.request_stop, tg.cancel_scope, console, STOPPING)
        with progress:
            result = await cleaner.run(p)
        tg.cancel_scope.cancel()
    _print_cleanup(console, result, conns.stats)
    if result.interrupted:
        return ExitCode.INTERRUPTED
    return ExitCode.FAILED if result.errors else ExitCode.OK


def _print_plan_tenants(console: Console, p: cleanup_mod.CleanupPlan, profiles: list[str]) -> None:
    """What the plan deletes in each tenant of a run across many (the tenants with nothing
    to delete in one line)."""
    by: dict[str | None, list[cleanup_mod.Target]] = {}
    for t in p.targets:
        by.setdefault(t.profile, []).append(t)
    for profile in profiles:
        mine = by.get(profile)
        if mine:
            part = cleanup_mod.CleanupPlan(mine, [])
            console.print(
                printable(f"tenant {profile}: {len(mine)} instance(s), {_describe(part)}"),
                markup=False,
            )
    idle = [x for x in profiles if x not in by]
    if idle:
        console.print(
            printable(f"nothing to delete in {describe(idle)}"), markup=False, soft_wrap=True
        )


def _print_cleanup(console: Console, result: cleanup_mod.CleanupResult, stats: Any) -> None:
    table = Table(title="bulkprov cleanup")
    table.add_column("object")
    table.add_column("deleted", justify="right")
    table.add_column("already gone", justify="right")
    for kind, label in KIND_LABELS.items():
        if result.deleted[kind] or result.gone[kind]:
            table.add_row(label, str(result.deleted[kind]), str(result.gone[kind]))
    table.caption = f"{result.removed} instance(s) removed; {client_stats(stats)}"
    console.print(table)
    if result.tenants:
        console.print(_tenants_table(result))
    if result.errors:
        multi = any("profile" in e for e in result.errors)
        t = Table(title=f"{len(result.errors)} deletion(s) failed (first 20)")
        for col in ("tenant",) * multi + ("instance", "object", "id", "code", "message"):
            t.add_column(col, overflow="fold")
        for e in result.errors[:20]:
            t.add_row(
                *([cell(e.get("profile"))] if multi else []),
                cell(e["key"]),
                cell(e["object"]),
                cell(e["id"]),
                cell(e["code"]),
                cell(shorten(str(e["message"]), 200)),
            )
        console.print(t)
    if result.interrupted:
        console.print("[yellow]interrupted: run cleanup again to finish[/]")


def _tenants_table(result: cleanup_mod.CleanupResult) -> Table:
    """One row per tenant of a run across many: instances removed, objects deleted, failed."""
    kinds = [k for k in SHORT_LABELS if any(c[k] for c in result.tenants.values())]
    n = len(result.tenants)
    table = Table(title=f"by tenant ({n} profile{'s' if n != 1 else ''})")
    table.add_column("tenant", overflow="fold")
    table.add_column("removed", justify="right")
    for kind in kinds:
        table.add_column(SHORT_LABELS[kind], justify="right")
    table.add_column("failed", justify="right")
    for profile, c in sorted(result.tenants.items()):
        table.add_row(
            cell(profile), str(c["removed"]), *(str(c[k]) for k in kinds), str(c["errors"])
        )
    return table
