"""``bulkprov monitor``: the state of every job a ledger records (:mod:`bulkprov.monitor`),
the quarantined ones restarted on ``--restart``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import anyio
import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .. import ledger as ledger_mod
from ..cliconnect import connection_options
from ..display import cell, printable
from ..exitcodes import ExitCode
from ..log import configure
from ..monitor import Monitor, MonitorSettings, exit_status, monitor_tenants
from ..redact import shorten
from ..tenancy import describe
from .common import read_ledger
from .tenants import connections, is_multi

TENANT_LINES = 25  # tenants the summary counts one by one


def cmd_monitor(args: argparse.Namespace) -> int:
    configure(console_level=("warning", "info", "debug")[min(args.verbose, 2)])
    replay = read_ledger(args.ledger)
    opts = connection_options(args)
    settings = MonitorSettings(
        concurrency=args.concurrency,
        logs=not args.no_logs,
        since=args.since,
        failures_per_sp=args.failures,
        restart=args.restart,
        reset_scope=args.reset_scope,
    )

    async def main() -> tuple[list[dict[str, Any]], list[Monitor]]:
        async with connections(opts, args.ledger, replay, args.only_tenants) as conns:
            ledger = None
            if args.restart:
                ledger = ledger_mod.Ledger(args.ledger)
                ledger.open(manifest=None, command="monitor", create=False, **conns.ledger_target())
            try:
                return await monitor_tenants(conns.graphs(), replay, settings, ledger=ledger)
            finally:
                if ledger is not None:
                    ledger.close()

    rows, monitors = anyio.run(main)
    if args.json:
        out = sys.stdout
        for row in rows:
            out.write(orjson.dumps(row).decode() + "\n")
    else:
        _print_monitor(args, rows, monitors, multi=is_multi(replay))
    verdict = exit_status(rows)
    return {"failed": ExitCode.FAILED, "quarantined": ExitCode.QUARANTINED}.get(
        verdict, ExitCode.OK
    )


def _counts(rows: list[dict[str, Any]]) -> str:
    """``3 job(s): 2 Active, 1 Quarantine; 1 restarted; 1 with provisioning failures``."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[str(r.get("status"))] = counts.get(str(r.get("status")), 0) + 1
    restarted = sum(1 for r in rows if r.get("restarted"))
    failing = sum(1 for r in rows if (r.get("logs") or {}).get("failures"))
    return (
        f"{len(rows)} job(s): "
        + ", ".join(f"{n} {printable(s)}" for s, n in sorted(counts.items()))
        + (f"; {restarted} restarted" if restarted else "")
        + (f"; {failing} with provisioning failures" if failing else "")
    )


def _print_tenants(console: Console, rows: list[dict[str, Any]], profiles: list[str]) -> None:
    """A line per tenant of a run across many: its jobs by status (the first
    :data:`TENANT_LINES` tenants, those with jobs needing attention first)."""
    by: dict[str, list[dict[str, Any]]] = {p: [] for p in profiles}
    for r in rows:
        by.setdefault(str(r.get("profile")), []).append(r)
    order = sorted(by, key=lambda p: (not any(_attention(r) for r in by[p]), p))
    for profile in sorted(order[:TENANT_LINES]):
        console.print(f"  tenant {printable(profile)}: {_counts(by[profile])}", markup=False)
    if len(order) > TENANT_LINES:
        console.print(f"  ... and {len(order) - TENANT_LINES} more tenants", markup=False)


def _attention(r: dict[str, Any]) -> bool:
    return bool(
        r.get("status") != "Active"
        or r.get("errorCodes")
        or (r.get("logs") or {}).get("failures")
        or r.get("restarted")
    )


def _print_monitor(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    monitors: list[Monitor],
    *,
    multi: bool = False,
) -> None:
    console = Console(highlight=False)
    if not rows:
        console.print(f"{args.ledger}: the ledger records no job", markup=False)
        return
    profiles = [str(m.profile) for m in monitors if m.profile is not None]
    where = f" in {describe(profiles)}" if multi else ""
    console.print(f"{args.ledger}{where}: {_counts(rows)}", markup=False)
    if multi:
        _print_tenants(console, rows, profiles)
    shown = [r for r in rows if args.all or _attention(r)]
    if not shown:
        return
    t = Table(title="jobs" if args.all else "jobs needing attention")
    if multi:
        t.add_column("tenant", overflow="fold")
    for col in ("instance", "status", "quarantine / error", "last execution", "failures"):
        t.add_column(col, overflow="fold")
    for r in shown[:200]:
        t.add_row(*([cell(r.get("profile"))] if multi else []), *_job_cells(r))
    if len(shown) > 200:
        t.caption = f"... {len(shown) - 200} more (--json lists all)"
    if any(m.logs_truncated for m in monitors):
        t.caption = (t.caption or "") + " provisioning failures truncated (--since narrows)"
    console.print(t)


def _job_cells(r: dict[str, Any]) -> list[Text]:
    """A job's row: instance, status, quarantine or error, last execution, failures."""
    status = str(r.get("status"))
    if r.get("restarted"):
        status += f" (restarted from {r.get('statusBeforeRestart')})"
    if r.get("restartError"):
        status += f" (restart failed: {shorten(r['restartError'], 80)})"
    q = r.get("quarantine")
    detail = r.get("error") or ""
    if q:
        detail = f"{q.get('reason')}: {q.get('code')}: {q.get('message')}"
    last = r.get("lastExecution") or {}
    last_text = str(last.get("state") or "")
    if last.get("error"):
        last_text += f" {last['error'].get('code')}"
    logs = r.get("logs") or {}
    fail_lines = [printable(logs.get("error") or logs.get("failures") or "")]
    fail_lines += [
        printable(f"{f.get('at')} {f.get('errorCode')} {f.get('identity') or ''}")
        for f in logs.get("latest") or []
    ]
    return [
        cell(r["key"]),
        cell(status),
        cell(shorten(detail, 240)),
        cell(last_text),
        cell("\n".join(fail_lines), keep_newlines=True),
    ]
