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
from rich.text import Text

from .. import ledger as ledger_mod
from ..cliconnect import connection_options
from ..display import cell, printable
from ..drift import InstanceDrift, check_all
from ..errors import ConfigError, LedgerError, ManifestError
from ..exitcodes import ExitCode
from ..log import configure
from ..manifest import iter_instances, validate
from ..records import DriftRecord
from ..redact import shorten
from ..tenancy import describe
from .common import ref_rules
from .tenants import Connections, connections, is_multi

ROWS = 200  # drifted instances the table lists


def cmd_drift(args: argparse.Namespace) -> int:
    configure(console_level=("warning", "info", "debug")[min(args.verbose, 2)])
    replay = ledger_mod.read(args.ledger)
    if replay.header is None:
        raise ConfigError(f"{args.ledger} is not a bulkprov ledger (no header line)")
    if not args.manifest.is_file():
        raise ConfigError(f"no manifest at {args.manifest}")
    opts = connection_options(args)
    rules = ref_rules(opts, args.secrets_dir)
    summary = validate(args.manifest, allow_inline_secrets=args.allow_inline_secrets, rules=rules)
    if summary.problems:
        raise ManifestError(summary.problems)

    async def main() -> tuple[list[InstanceDrift], int, str | None, list[str]]:
        async with connections(opts, args.ledger, replay, args.only_tenants) as conns:
            instances = iter_instances(
                args.manifest, allow_inline_secrets=args.allow_inline_secrets, rules=rules
            )
            rows, pending = await check_all(
                conns.graphs() if conns.multi else conns.first.graph,
                replay,
                instances,
                concurrency=args.concurrency,
                default_profile=opts.profile_name(),
            )
            note = None if args.no_record else _record(args, rows, conns)
            return rows, pending, note, conns.profiles

    rows, pending, note, profiles = anyio.run(main)
    if args.json:
        doc = {
            "instances": [r.to_json() for r in rows],
            "drifted": sum(r.drifted for r in rows),
            "unread": sum(1 for r in rows if r.error),
            "notSetUp": pending,
            **({"tenants": _by_tenant(rows, profiles)} if is_multi(replay) else {}),
        }
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _print(args, rows, pending, profiles if is_multi(replay) else None)
    if note:
        Console(stderr=True, highlight=False).print(note, markup=False)
    if any(r.drifted for r in rows):
        return ExitCode.DRIFTED
    return ExitCode.FAILED if any(r.error for r in rows) else ExitCode.OK


def _record(args: argparse.Namespace, rows: list[InstanceDrift], conns: Connections) -> str:
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
            profile=r.profile,
        )
        for r in rows
        if not r.error and (r.drifted or r.was_drifted)
    ]
    if not records:
        return ""
    ledger = ledger_mod.Ledger(args.ledger)
    try:
        ledger.open(manifest=None, command="drift", create=False, **conns.ledger_target())
        for rec in records:
            ledger.append(rec)
    except LedgerError as exc:
        return f"note: drift not recorded in the ledger: {exc}"
    finally:
        ledger.close()
    left_out = "`cleanup --tenant`" if conns.multi else "run --prune"
    return (
        f"recorded {len(records)} drift record(s) in {args.ledger}; the next `run` puts back "
        f"what it can (not a deleted object; instances left out of the manifest: {left_out})"
    )


def _by_tenant(rows: list[InstanceDrift], profiles: list[str]) -> dict[str, dict[str, int]]:
    """profile -> instances read, drifted and not read, for each tenant compared."""
    out = {p: {"read": 0, "drifted": 0, "unread": 0} for p in profiles}
    for r in rows:
        counts = out.setdefault(str(r.profile), {"read": 0, "drifted": 0, "unread": 0})
        counts["read"] += 1
        counts["drifted"] += r.drifted
        counts["unread"] += bool(r.error)
    return out


def _summary(rows: list[InstanceDrift], pending: int) -> str:
    n = sum(r.drifted for r in rows)
    unread = sum(1 for r in rows if r.error)
    return (
        f"{len(rows)} instance(s) read, {n} drifted"
        + (f", {unread} not read" if unread else "")
        + (f"; {pending} not set up yet (a run sets them up)" if pending else "")
    )


def _print(
    args: argparse.Namespace,
    rows: list[InstanceDrift],
    pending: int,
    profiles: list[str] | None = None,
) -> None:
    """The summary line (for a run across many tenants, the tenants compared and the drift
    of each that has some), then a row per drifted finding."""
    console = Console(highlight=False)
    drifted = [r for r in rows if r.drifted or r.error]
    where = f" in {describe(profiles)}" if profiles is not None else ""
    console.print(
        f"{args.ledger} against {args.manifest}{where}: {_summary(rows, pending)}",
        markup=False,
    )
    if profiles is not None:
        for profile, c in _by_tenant(rows, profiles).items():
            if c["drifted"] or c["unread"]:
                console.print(
                    printable(
                        f"  tenant {profile}: {c['read']} read, {c['drifted']} drifted"
                        + (f", {c['unread']} not read" if c["unread"] else "")
                    ),
                    markup=False,
                )
    if not drifted:
        return
    t = Table(title="drift")
    lead = ["tenant"] if profiles is not None else []
    for col in (*lead, "instance", "field", "desired", "live"):
        t.add_column(col, overflow="fold")
    for r in drifted[:ROWS]:
        for line in _lines(r):
            t.add_row(*([cell(r.profile)] if profiles is not None else []), *line)
    if len(drifted) > ROWS:
        t.caption = f"... {len(drifted) - ROWS} more (--json lists all)"
    console.print(t)


def _lines(r: InstanceDrift) -> list[list[Text | str]]:
    """An instance's rows of the drift table: instance, field, desired, live."""
    out: list[list[Text | str]] = []
    if r.error:
        out.append([cell(r.key), "", "", cell(r.message())])
    for f in r.findings:
        if f.paths:
            for path, want, live in f.paths:
                out.append([cell(r.key), cell(f"schema {path}"), cell(want), cell(live)])
            if f.more:
                out.append([cell(r.key), cell(f"schema: {f.more} more path(s)"), "", ""])
        else:
            out.append([cell(r.key), cell(f.what), cell(_text(f.desired)), cell(_text(f.live))])
    return out


def _text(value: object) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()
