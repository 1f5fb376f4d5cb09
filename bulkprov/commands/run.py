"""``bulkprov run``: a manifest through the engine (:class:`bulkprov.run.Runner`), its
summary on the console and in ``--summary-json``; a first SIGINT drains, a second stops."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..cliconnect import connection_options
from ..client import ClientStats
from ..connect import (
    ConnectionOptions,
    Target,
    target,
    targets_label,
    tenant_clients,
    tenant_targets,
)
from ..display import cell
from ..errors import ConfigError, ManifestError
from ..exitcodes import ExitCode
from ..files import check_writable, write_atomic
from ..ledger import Redactor
from ..log import configure
from ..manifest import validate
from ..progress import Progress
from ..redact import shorten
from ..run import Runner, RunResult, Tenant
from ..settings import RunSettings
from .common import client_stats, ref_rules, stderr_console, stop_on_signals

PRUNE_ONE_TENANT = (
    "--prune works on a run of one tenant; for a manifest whose rows name profiles, run "
    "`bulkprov cleanup` on what the manifest dropped"
)
# what a first SIGINT or SIGTERM starts
DRAIN = "draining - in-flight steps finish, nothing new starts"


def _start(args: argparse.Namespace) -> Redactor:
    """The ledger of a ``--mock`` run that names none, and the run's logging."""
    if args.ledger is None:
        if not args.mock:
            raise ConfigError("--ledger is required: it is what makes a run resumable")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        args.ledger = Path("runs") / f"{args.manifest.stem}-mock-{stamp}.jsonl"
    redactor = Redactor()
    configure(
        console_level=("warning", "info", "debug")[min(args.verbose, 2)],
        log_file=args.log_file,
        redactor=redactor,
    )
    return redactor


def cmd_run(args: argparse.Namespace) -> int:
    redactor = _start(args)
    console = stderr_console()
    if args.summary_json is not None:
        check_writable(args.summary_json, "--summary-json")
    opts = replace(connection_options(args), write_quota=args.write_quota, ru_quota=args.ru_quota)
    # validate before anything else: a bad manifest makes no Graph call at all
    rules = ref_rules(opts, args.secrets_dir)
    summary = validate(args.manifest, allow_inline_secrets=args.allow_inline_secrets, rules=rules)
    if summary.problems:
        raise ManifestError(summary.problems)
    settings = _run_settings(args)

    default = opts.profile_name()
    profiles = summary.profile_names(default, args.only_tenants)
    if profiles and args.prune:
        raise ConfigError(PRUNE_ONE_TENANT)

    async def main() -> tuple[RunResult, ClientStats, str]:
        every = summary.profile_names(default)
        async with _connected(opts, profiles, args.ledger, every) as targets:
            label = targets_label(targets)
            count = summary.count_of(profiles, default)
            console.print(
                f"bulkprov: {count} instances from {args.manifest} -> {label}; ledger "
                f"{args.ledger}",
                markup=False,
                soft_wrap=True,
            )
            async with tenant_clients(opts, [t for _p, t in targets]) as clients:
                stats = clients[0].stats  # one count of requests for all tenants' clients
                tenants = [
                    Tenant(c, tgt.ledger_graph, profile)
                    for c, (profile, tgt) in zip(clients, targets, strict=True)
                ]
                progress = Progress(count, console, stats, interval=args.progress_every)
                runner = Runner(
                    manifest=args.manifest,
                    ledger_path=args.ledger,
                    tenants=tenants,
                    default_profile=default,
                    settings=settings,
                    allow_inline_secrets=args.allow_inline_secrets,
                    events=progress,
                    redactor=redactor,
                    rules=rules,
                    summary=summary,  # validated above: the run streams the manifest only
                )
                progress.tenants = runner.result.tenants
                async with anyio.create_task_group() as tg:
                    tg.start_soon(
                        stop_on_signals, runner.request_stop, tg.cancel_scope, console, DRAIN
                    )
                    with progress:
                        result = await runner.run()
                    tg.cancel_scope.cancel()
                if args.prune and not result.interrupted:  # day 2: what the manifest dropped
                    from ..prune import run_prune

                    client, tgt = tenants[0].client, targets[0][1]
                    pruned.append(await run_prune(args, client, tgt.ledger_graph, rules, console))
                return result, stats, label

    pruned: list[bool] = []
    result, stats, label = anyio.run(main)
    _print_run_summary(console, result, stats, args.ledger, redactor)
    if pruned and not pruned[0]:
        return ExitCode.FAILED
    summary_written = args.summary_json is None or _write_summary_json(
        args, console, result, stats, label
    )
    return _exit_code(result, summary_written)


@contextlib.asynccontextmanager
async def _connected(
    opts: ConnectionOptions, profiles: list[str], ledger: Path, every: list[str]
) -> AsyncIterator[list[tuple[str | None, Target]]]:
    """The run's Graph: one tenant's (no profiles), or each profile's."""
    if not profiles:
        async with target(opts, ledger=ledger, create=True) as tgt:
            yield [(None, tgt)]
        return
    async with tenant_targets(
        opts, profiles, ledger=ledger, create=True, every_profile=every
    ) as targets:
        yield [(p, t) for p, t in targets]


def _run_settings(args: argparse.Namespace) -> RunSettings:
    return RunSettings(
        concurrency=args.concurrency,
        on_existing=args.on_existing,
        monitor=not args.no_monitor,
        collect_logs=not args.no_logs,
        monitor_deadline=args.monitor_deadline,
        fsync=args.fsync,
    )


def _exit_code(result: RunResult, summary_written: bool) -> ExitCode:
    """Interrupted, then failed, then quarantined; a summary file that could not be written
    is a usage error."""
    if result.interrupted or result.statuses["interrupted"]:
        return ExitCode.INTERRUPTED
    if result.failed:
        return ExitCode.FAILED
    if result.statuses["quarantined"]:
        return ExitCode.QUARANTINED
    return ExitCode.OK if summary_written else ExitCode.USAGE


def _tenants_json(result: RunResult) -> dict[str, Any]:
    return {
        t.profile: {
            "tenant": t.tenant,
            "total": t.total,
            "statuses": dict(t.statuses),
            "skipped": t.skipped,
            "elapsed": round(t.elapsed, 3),
        }
        for t in sorted(result.tenants.values(), key=lambda t: t.profile)
    }


def _write_summary_json(
    args: argparse.Namespace, console: Console, result: RunResult, stats: ClientStats, label: str
) -> bool:
    """Write ``--summary-json``; False (said on the console) when it cannot be written."""
    try:
        write_atomic(  # 0600: it holds the failures' messages
            args.summary_json,
            orjson.dumps(
                {
                    "total": result.total,
                    "skipped": result.skipped,
                    # by status: "statuses" counts the skipped instances too (as it always
                    # did), "thisRun" and "skippedStatuses" apart
                    "statuses": dict(result.statuses),
                    "thisRun": dict(result.this_run),
                    "skippedStatuses": dict(result.skipped_statuses),
                    "elapsed": result.elapsed,
                    "client": stats.as_dict(),
                    "failures": result.failures,
                    "target": label,
                    **({"tenants": _tenants_json(result)} if result.tenants else {}),
                },
                option=orjson.OPT_INDENT_2,
            ),
        )
    except OSError as exc:
        # the run's work is done and in the ledger: say so, and only then fail
        console.print(
            f"bulkprov: error: cannot write --summary-json {args.summary_json}: "
            f"{exc.strerror}; the run itself is recorded in {args.ledger}",
            markup=False,
        )
        return False
    return True


TENANT_ROWS = 25  # a run across more tenants shows those that did worst, and a count


def _tenants_table(result: RunResult) -> Table:
    """One row per tenant: its instances by status, and when its last one ended; with more
    than :data:`TENANT_ROWS` tenants, those with the most failed or unfinished first."""
    statuses = sorted({s for t in result.tenants.values() for s in t.statuses})
    parts = sorted(
        result.tenants.values(),
        key=lambda t: (-(t.failed + t.total - t.ended), t.profile),
    )
    shown = parts if len(parts) <= TENANT_ROWS else parts[:TENANT_ROWS]
    # (the tenant ids are in the ledger's header and --summary-json: a 36-character id
    # would not leave a narrow terminal room for the counts)
    plural = "s" if len(parts) != 1 else ""
    table = Table(title=f"by tenant ({len(parts)} profile{plural})")
    table.add_column("profile", overflow="fold")
    table.add_column("instances", justify="right")
    for status in statuses:
        table.add_column(status, justify="right")
    table.add_column("skipped", justify="right")
    table.add_column("s", justify="right")
    for t in sorted(shown, key=lambda t: t.profile):
        row: list[Text | str] = [cell(t.profile), str(t.total)]
        row += [str(t.statuses[s]) for s in statuses]
        row += [str(t.skipped), f"{t.elapsed:.1f}"]
        table.add_row(*row)
    if len(parts) > len(shown):
        table.caption = (
            f"{len(parts) - len(shown)} more tenants, all finished without failure "
            "(--summary-json has every tenant)"
            if all(t.failed == 0 and t.ended >= t.total for t in parts[len(shown) :])
            else f"{len(parts) - len(shown)} more tenants (--summary-json has every tenant)"
        )
    return table


def _print_run_summary(
    console: Console, result: Any, stats: Any, ledger: Path, redactor: Redactor | None = None
) -> None:
    """Statuses of this run's instances, apart from those a resumed run skipped; then the
    ledger's path on a line of its own (never wrapped: it is copied into the next command)."""
    this_run = result.this_run
    skipped = result.skipped_statuses
    table = Table(title="bulkprov run")
    table.add_column("status")
    table.add_column("this run", justify="right")
    if result.skipped:
        table.add_column("already finished, skipped", justify="right")
    for status in sorted(set(this_run) | set(skipped)):
        row = [status, str(this_run[status])]
        if result.skipped:
            row.append(str(skipped[status]))
        table.add_row(*row)
    if not this_run and not skipped:
        table.add_row("(no instance)", "0", *(["0"] if result.skipped else []))
    console.print(table)
    if result.tenants:
        console.print(_tenants_table(result))
    console.print(
        f"{result.elapsed:.1f}s, {client_stats(stats)}",
        markup=False,
        soft_wrap=True,
    )
    console.print(f"ledger {ledger}", markup=False, highlight=False, soft_wrap=True)
    if result.failures:
        shown = len(result.failures)
        more = result.failed - shown
        failures = Table(
            title=f"failures (first {shown} of {result.failed})" if more > 0 else "failures"
        )
        for col in ("instance", "where", "step", "code", "message"):
            failures.add_column(col, overflow="fold")
        for f in result.failures:
            failures.add_row(
                cell(f["key"]),
                cell(f["where"]),
                cell(f["step"]),
                cell(f.get("code")),
                cell(shorten(str(f["message"]), 200, redactor)),
            )
        console.print(failures)
