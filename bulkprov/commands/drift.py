"""The ``drift`` command: each instance of a ledger as Graph has it now, against the manifest
(the engine is :mod:`bulkprov.drift`)."""

from __future__ import annotations

import argparse
import sys
import time

import anyio
import orjson
from rich.console import Console
from rich.table import Table

from .. import ledger as ledger_mod
from ..cliconnect import connection_options
from ..client import GraphClient
from ..connect import client_settings, target
from ..display import cell
from ..drift import InstanceDrift, check_all
from ..errors import ConfigError, LedgerError, ManifestError
from ..exitcodes import ExitCode
from ..graph import Graph
from ..log import configure
from ..manifest import iter_instances, validate
from ..records import DriftRecord
from ..redact import shorten
from .common import ref_rules

ROWS = 200  # drifted instances the table lists


def cmd_drift(args: argparse.Namespace) -> int:
    configure(console_level=("warning", "info", "debug")[min(args.verbose, 2)])
    replay = ledger_mod.read(args.ledger)
    header = replay.header
    if header is None:
        raise ConfigError(f"{args.ledger} is not a bulkprov ledger (no header line)")
    if not args.manifest.is_file():
        raise ConfigError(f"no manifest at {args.manifest}")
    opts = connection_options(args)
    rules = ref_rules(opts, args.secrets_dir)
    summary = validate(args.manifest, allow_inline_secrets=args.allow_inline_secrets, rules=rules)
    if summary.problems:
        raise ManifestError(summary.problems)

    async def main() -> tuple[list[InstanceDrift], int, str | None]:
        async with (
            target(opts, ledger=args.ledger) as tgt,
            GraphClient(tgt.conn, client_settings(opts, tgt.time_scale)) as client,
        ):
            await client.tokens.token()  # an authority that cannot be reached: say so first
            base, tenant = tgt.ledger_graph, client.conn.tenant_id
            ledger_mod.check_target(args.ledger, header, graph=base, tenant=tenant)
            instances = iter_instances(
                args.manifest, allow_inline_secrets=args.allow_inline_secrets, rules=rules
            )
            rows, pending = await check_all(
                Graph(client), replay, instances, concurrency=args.concurrency
            )
            note = None if args.no_record else _record(args, rows, base, tenant)
            return rows, pending, note

    rows, pending, note = anyio.run(main)
    if args.json:
        doc = {
            "instances": [r.to_json() for r in rows],
            "drifted": sum(r.drifted for r in rows),
            "unread": sum(1 for r in rows if r.error),
            "notSetUp": pending,
        }
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _print(args, rows, pending)
    if note:
        Console(stderr=True, highlight=False).print(note, markup=False)
    if any(r.drifted for r in rows):
        return ExitCode.DRIFTED
    return ExitCode.FAILED if any(r.error for r in rows) else ExitCode.OK


def _record(args: argparse.Namespace, rows: list[InstanceDrift], base: str, tenant: str) -> str:
    """Write a drift record per drifted instance (and one saying no drift for an instance the
    ledger last recorded as drifted), holding the ledger's lock like ``monitor --restart``; a
    note when the ledger is in use (nothing recorded: the report stands)."""
    records = [
        DriftRecord(
            key=r.key,
            t=round(time.time(), 3),
            drifted=r.drifted,
            fields=tuple(r.fields),
            message=shorten(r.message(), 1000),
            applied=r.applied or None,
        )
        for r in rows
        if not r.error and (r.drifted or r.was_drifted)
    ]
    if not records:
        return ""
    ledger = ledger_mod.Ledger(args.ledger)
    try:
        ledger.open(manifest=None, graph=base, tenant=tenant, command="drift", create=False)
        for rec in records:
            ledger.append(rec)
    except LedgerError as exc:
        return f"note: drift not recorded in the ledger: {exc}"
    finally:
        ledger.close()
    return (
        f"recorded {len(records)} drift record(s) in {args.ledger}; the next `run` puts back "
        "what it can (not a deleted object; instances left out of the manifest: run --prune)"
    )


def _print(args: argparse.Namespace, rows: list[InstanceDrift], pending: int) -> None:
    console = Console(highlight=False)
    drifted = [r for r in rows if r.drifted or r.error]
    n = sum(r.drifted for r in rows)
    unread = sum(1 for r in rows if r.error)
    console.print(
        f"{args.ledger} against {args.manifest}: {len(rows)} instance(s) read, {n} drifted"
        + (f", {unread} not read" if unread else "")
        + (f"; {pending} not set up yet (a run sets them up)" if pending else ""),
        markup=False,
    )
    if not drifted:
        return
    t = Table(title="drift")
    for col in ("instance", "field", "desired", "live"):
        t.add_column(col, overflow="fold")
    for r in drifted[:ROWS]:
        if r.error:
            t.add_row(cell(r.key), "", "", cell(r.message()))
        for f in r.findings:
            if f.paths:
                for path, want, live in f.paths:
                    t.add_row(cell(r.key), cell(f"schema {path}"), cell(want), cell(live))
                if f.more:
                    t.add_row(cell(r.key), cell(f"schema: {f.more} more path(s)"), "", "")
            else:
                t.add_row(cell(r.key), cell(f.what), cell(_text(f.desired)), cell(_text(f.live)))
    if len(drifted) > ROWS:
        t.caption = f"... {len(drifted) - ROWS} more (--json lists all)"
    console.print(t)


def _text(value: object) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()
