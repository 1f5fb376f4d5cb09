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

from .. import ledger as ledger_mod
from ..cliconnect import connection_options
from ..client import GraphClient
from ..connect import client_settings, target
from ..display import cell, printable
from ..exitcodes import ExitCode
from ..graph import Graph
from ..log import configure
from ..monitor import Monitor, MonitorSettings, exit_status
from ..redact import shorten
from .common import read_ledger


def cmd_monitor(args: argparse.Namespace) -> int:
    configure(console_level=("warning", "info", "debug")[min(args.verbose, 2)])
    replay = read_ledger(args.ledger)
    header = replay.header
    opts = connection_options(args)
    settings = MonitorSettings(
        concurrency=args.concurrency,
        logs=not args.no_logs,
        since=args.since,
        failures_per_sp=args.failures,
        restart=args.restart,
        reset_scope=args.reset_scope,
    )

    async def main() -> tuple[list[dict[str, Any]], Monitor]:
        async with (
            target(opts, ledger=args.ledger) as tgt,
            GraphClient(tgt.conn, client_settings(opts, tgt.time_scale)) as client,
        ):
            await client.tokens.token()  # an authority that cannot be reached: say so first
            base, tenant = tgt.ledger_graph, client.conn.tenant_id
            ledger_mod.check_target(args.ledger, header, graph=base, tenant=tenant)
            ledger = None
            if args.restart:
                ledger = ledger_mod.Ledger(args.ledger)
                ledger.open(
                    manifest=None, graph=base, tenant=tenant, command="monitor", create=False
                )
            try:
                monitor = Monitor(Graph(client), replay, settings, ledger=ledger)
                return await monitor.run(), monitor
            finally:
                if ledger is not None:
                    ledger.close()

    rows, monitor = anyio.run(main)
    if args.json:
        out = sys.stdout
        for row in rows:
            out.write(orjson.dumps(row).decode() + "\n")
    else:
        _print_monitor(args, rows, monitor)
    verdict = exit_status(rows)
    return {"failed": ExitCode.FAILED, "quarantined": ExitCode.QUARANTINED}.get(
        verdict, ExitCode.OK
    )


def _print_monitor(args: argparse.Namespace, rows: list[dict[str, Any]], monitor: Monitor) -> None:
    console = Console(highlight=False)
    counts: dict[str, int] = {}
    for r in rows:
        counts[str(r.get("status"))] = counts.get(str(r.get("status")), 0) + 1
    restarted = sum(1 for r in rows if r.get("restarted"))
    failing = sum(1 for r in rows if (r.get("logs") or {}).get("failures"))
    if not rows:
        console.print(f"{args.ledger}: the ledger records no job", markup=False)
        return
    console.print(
        f"{args.ledger}: {len(rows)} job(s): "
        + ", ".join(f"{n} {printable(s)}" for s, n in sorted(counts.items()))
        + (f"; {restarted} restarted" if restarted else "")
        + (f"; {failing} with provisioning failures" if failing else ""),
        markup=False,
    )

    def attention(r: dict[str, Any]) -> bool:
        return bool(
            r.get("status") != "Active"
            or r.get("errorCodes")
            or (r.get("logs") or {}).get("failures")
            or r.get("restarted")
        )

    shown = [r for r in rows if args.all or attention(r)]
    if not shown:
        return
    t = Table(title="jobs" if args.all else "jobs needing attention")
    for col in ("instance", "status", "quarantine / error", "last execution", "failures"):
        t.add_column(col, overflow="fold")
    for r in shown[:200]:
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
        t.add_row(
            cell(r["key"]),
            cell(status),
            cell(shorten(detail, 240)),
            cell(last_text),
            cell("\n".join(fail_lines), keep_newlines=True),
        )
    if len(shown) > 200:
        t.caption = f"... {len(shown) - 200} more (--json lists all)"
    if monitor.logs_truncated:
        t.caption = (t.caption or "") + " provisioning failures truncated (--since narrows)"
    console.print(t)
