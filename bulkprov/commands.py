"""The ``run``, ``plan``, ``export`` and ``status`` commands."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import orjson
from rich.console import Console
from rich.table import Table

from . import ledger as ledger_mod
from . import planner
from .client import GraphClient
from .connect import client_settings, target
from .display import cell, printable
from .errors import ConfigError, GraphError, ManifestError
from .files import check_writable, write_atomic
from .graph import Graph
from .ledger import Redactor
from .log import configure
from .manifest import Instance, iter_instances, validate
from .progress import Progress, TaskProgress
from .redact import shorten
from .refs import RefRules
from .run import Runner, read_needs, resolve_agent_groups, resolve_templates
from .settings import RunSettings

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_QUARANTINE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
STATUS_ROWS = 200  # instances `status` lists before it says how many more there are


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


def ref_rules(args: argparse.Namespace) -> RefRules:
    """What the manifest's references may reach: ``--secrets-dir`` and the profile's
    ``secrets_dirs`` besides the manifest's directory; never the variable or the file that
    bulkprov's own credential comes from (flags, BULKPROV_* variables, the profile)."""
    from . import profiles as profiles_mod
    from .connect import ENV, SECRET_ENV

    dirs: list[Path] = []
    for d in getattr(args, "secrets_dir", None) or ():
        if not d.is_dir():
            why = "does not exist" if not d.exists() else "is not a directory"
            raise ConfigError(f"--secrets-dir {d}: {why}")
        dirs.append(d)
    own_env = {getattr(args, "client_secret_env", None) or SECRET_ENV}
    own_files: set[Path] = set()
    for name in ("client_secret_file", "certificate_file", "mock_info"):
        value = getattr(args, name, None) or os.environ.get(ENV[name])
        if value:
            own_files.add(Path(value))
    profile = getattr(args, "profile", None) or os.environ.get(profiles_mod.ENV_NAME)
    if profile and not getattr(args, "mock", False):
        path = profiles_mod.profiles_path(getattr(args, "profiles", None))
        prof = profiles_mod.select(path, profile)
        dirs.extend(prof.checked_secrets_dirs())
        env, files = prof.own_sources()
        own_env |= env
        own_files |= files
    return RefRules(
        secrets_dirs=tuple(dirs), own_env=frozenset(own_env), own_files=frozenset(own_files)
    )


def cmd_run(args: argparse.Namespace) -> int:
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
    console = _stderr()
    if args.summary_json is not None:
        check_writable(args.summary_json, "--summary-json")
    # validate before anything else: a bad manifest makes no Graph call at all
    rules = ref_rules(args)
    summary = validate(args.manifest, allow_inline_secrets=args.allow_inline_secrets, rules=rules)
    if summary.problems:
        raise ManifestError(summary.problems)
    settings = RunSettings(
        concurrency=args.concurrency,
        on_existing=args.on_existing,
        monitor=not args.no_monitor,
        collect_logs=not args.no_logs,
        monitor_deadline=args.monitor_deadline,
        fsync=args.fsync,
    )

    async def main() -> tuple[Any, Any, str]:
        async with target(args, ledger=args.ledger, create=True) as tgt:
            console.print(
                f"bulkprov: {summary.count} instances from {args.manifest} -> "
                f"{tgt.label}; ledger {args.ledger}",
                markup=False,
                soft_wrap=True,
            )
            async with GraphClient(tgt.conn, client_settings(args, tgt.time_scale)) as client:
                progress = Progress(
                    summary.count, console, client.stats, interval=args.progress_every
                )
                runner = Runner(
                    manifest=args.manifest,
                    ledger_path=args.ledger,
                    client=client,
                    settings=settings,
                    allow_inline_secrets=args.allow_inline_secrets,
                    events=progress,
                    redactor=redactor,
                    rules=rules,
                    summary=summary,  # validated above: the run streams the manifest only
                    ledger_graph=tgt.ledger_graph,
                )
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_signals, runner, tg.cancel_scope, console)
                    with progress:
                        result = await runner.run()
                    tg.cancel_scope.cancel()
                return result, client.stats, tgt.label

    result, stats, label = anyio.run(main)
    _print_run_summary(console, result, stats, args.ledger, redactor)
    summary_failed = False
    if args.summary_json is not None:
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
            summary_failed = True
    if result.interrupted or result.statuses["interrupted"]:
        return EXIT_INTERRUPTED
    if result.failed:
        return EXIT_FAILED
    if result.statuses["quarantined"]:
        return EXIT_QUARANTINE
    return EXIT_INPUT if summary_failed else EXIT_OK


async def _signals(runner: Runner, scope: anyio.CancelScope, console: Console) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        count = 0
        async for signum in signals:
            count += 1
            if count == 1:
                console.print(
                    f"[yellow]{signal.Signals(signum).name}: draining - in-flight "
                    "steps finish, nothing new starts; again to stop at once[/]"
                )
                runner.request_stop()
            else:
                scope.cancel()
                return


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
    console.print(
        f"{result.elapsed:.1f}s, requests {stats.requests}, 429s {stats.throttled}, "
        f"retries {stats.retries}",
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


def cmd_plan(args: argparse.Namespace) -> int:
    configure(console_level="warning")
    console = Console(highlight=False)
    rules = ref_rules(args)
    summary = validate(args.manifest, allow_inline_secrets=args.allow_inline_secrets, rules=rules)
    if summary.problems:
        raise ManifestError(summary.problems)
    if (note := summary.shared_note()) is not None:
        _stderr().print(f"note: {note}", markup=False, soft_wrap=True)
    if args.offline:
        console.print(
            f"{args.manifest}: {summary.count} instances, "
            f"{len(summary.templates)} distinct templates; the manifest is valid"
        )
        return EXIT_OK
    replay = ledger_mod.read(args.ledger) if args.ledger and args.ledger.exists() else None

    async def main() -> list[dict[str, Any]]:
        async with (
            target(args, ledger=args.ledger if replay is not None else None) as tgt,
            GraphClient(tgt.conn, client_settings(args, tgt.time_scale)) as client,
        ):
            graph = Graph(client)
            templates = await resolve_templates(graph, summary)
            needs = await read_needs(graph, templates)
            credential = tgt.conn.credential
            groups: dict[str, str] = {}
            if summary.agent_groups and credential.delegated:
                groups = await resolve_agent_groups(graph, summary)
            claimed = replay.claimed("applicationId") if replay else {}
            rows: list[dict[str, Any]] = []
            limiter = anyio.CapacityLimiter(32)

            def decide(inst: Instance, apps: list[Any] | None = None) -> planner.Decision:
                tid = templates[inst.template].id
                return planner.decide(
                    inst,
                    replay.instances.get(inst.key) if replay else None,
                    template_id=tid,
                    needs=needs.get(tid),
                    apps=apps,
                    claimed=claimed,
                    on_existing=args.on_existing,
                    delegated=credential.delegated,
                    credential_kind=credential.kind,
                )

            def fill(row: dict[str, Any], decision: planner.Decision) -> None:
                row["action"] = decision.action
                if decision.application_id:
                    row["applicationId"] = decision.application_id
                if decision.code:
                    row["code"] = decision.code
                note = "; ".join(n for n in (row.get("note"), decision.note) if n)
                if note:
                    row["note"] = note

            async def lookup(inst: Instance, row: dict[str, Any]) -> None:
                """The decisions that depend on the applications of the instance's name."""
                async with limiter:
                    try:
                        apps = await graph.applications_named(inst.display_name)
                    except GraphError as err:
                        row["action"] = "unknown"
                        row["note"] = f"{err.status} {err.code}"
                        return
                fill(row, decide(inst, apps))

            async with anyio.create_task_group() as tg:
                for inst in iter_instances(
                    args.manifest, allow_inline_secrets=args.allow_inline_secrets, rules=rules
                ):
                    row = {
                        "key": inst.key,
                        "where": inst.where,
                        "displayName": inst.display_name,
                        "template": templates[inst.template].display_name,
                        "templateId": templates[inst.template].id,
                        "start": inst.start,
                        "schema": inst.schema_file.name if inst.schema_file else None,
                    }
                    rows.append(row)
                    if inst.agent_group is not None:
                        row["agentGroup"] = inst.agent_group
                        if credential.delegated:
                            row["agentGroupId"] = groups[inst.agent_group]
                            row["note"] = f"assign agent group {inst.agent_group}"
                    decision = decide(inst)
                    if decision.action == "lookup":
                        tg.start_soon(lookup, inst, row)
                    else:
                        fill(row, decision)
            return rows

    rows = anyio.run(main)
    counts = Counter(r["action"] for r in rows)
    if args.json:
        sys.stdout.write(
            orjson.dumps({"instances": rows, "counts": counts}, option=orjson.OPT_INDENT_2).decode()
            + "\n"
        )
    else:
        table = Table(
            title=f"plan for {args.manifest}: "
            + ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
        )
        for col in ("instance", "line", "displayName", "template", "schema", "action", "note"):
            table.add_column(col, overflow="fold")
        for r in rows[:25]:
            table.add_row(
                cell(r["key"]),
                cell(r["where"].rsplit(":", 1)[-1]),
                cell(r["displayName"]),
                cell(r["template"]),
                "yes" if r["schema"] else "",
                cell(r["action"]),
                cell(r.get("note", "")),
            )
        if len(rows) > 25:
            table.caption = f"... {len(rows) - 25} more (--json lists all)"
        console.print(table)
    return EXIT_FAILED if counts.get("conflict") or counts.get("refuse") else EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from .export import ExportFilter, export, read_ids_file

    configure(console_level="warning")
    console = _stderr()
    out: Path = args.out
    if (out / "manifest.json").exists() and not args.force:
        raise ConfigError(f"{out / 'manifest.json'} exists; pass --force to overwrite it")
    flt = ExportFilter(
        template=args.template,
        name=args.name,
        ids=read_ids_file(args.ids_file) if args.ids_file else None,
    )

    async def main() -> Any:
        async with (
            target(args) as tgt,
            GraphClient(tgt.conn, client_settings(args, tgt.time_scale)) as client,
        ):
            source = f"tenant {tgt.conn.tenant_id} ({tgt.label})"
            progress = TaskProgress(
                "export",
                "service principals read",
                console,
                pending="listing service principals",
                interval=args.progress_every,
            )
            with progress:
                return await export(
                    Graph(client), out, flt, source=source, on_progress=progress.update
                )

    result = anyio.run(main)
    console.print(
        f"bulkprov: exported {len(result.instances)} instances "
        f"({result.scanned} gallery service principals matched) to {result.manifest}"
    )
    for name, why in result.skipped:
        console.print(f"  note: {printable(name)}: {printable(why)}", markup=False)
    if result.variables:
        console.print(
            f"  {len(result.variables)} secret references to fill in: see {out / 'secrets.env'} "
            "(plan and run refuse the manifest until every variable is set)"
        )
    return EXIT_OK


def status_summary(replay: ledger_mod.Replay) -> dict[str, Any]:
    statuses: Counter[str] = Counter()
    steps_done: Counter[str] = Counter()
    rows = []
    for key, st in replay.instances.items():
        statuses[st.status or "in progress"] += 1
        for step in st.done:
            steps_done[step] += 1
        final = st.record
        rows.append(
            {
                "key": key,
                "status": st.status or "in progress",
                "applicationId": st.ids.get("applicationId"),
                "servicePrincipalId": st.ids.get("servicePrincipalId"),
                "jobId": st.ids.get("jobId"),
                "jobStatus": final.job_status if final else None,
                "error": final.error.to_json() if final and final.error else None,
                "quarantine": final.quarantine if final else None,
                "stepsDone": sorted(st.done),
                "removed": sorted(kind for kind, _id in st.removed),
            }
        )
    return {
        "runs": replay.runs,
        "commands": dict(replay.commands),
        "instances": len(replay.instances),
        "statuses": dict(statuses),
        "stepsDone": dict(steps_done),
        "tornLastLine": replay.torn,
        "header": {
            k: v for k, v in (replay.header.to_json() if replay.header else {}).items()
            if k != "salt"
        },
        "rows": rows,
    }


def cmd_status(args: argparse.Namespace) -> int:
    replay = ledger_mod.read(args.ledger)
    summary = status_summary(replay)
    if args.json:
        sys.stdout.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode() + "\n")
        return EXIT_OK
    console = Console(highlight=False)
    header = summary["header"]
    console.print(
        f"{args.ledger}: manifest {printable(header.get('manifest'))}, tenant "
        f"{printable(header.get('tenant'))}, {summary['runs']} run(s), "
        f"{summary['instances']} instances",
        markup=False,
    )
    steps = Table(title="steps done")
    steps.add_column("step")
    steps.add_column("instances", justify="right")
    from .pipeline import ALL_STEPS

    for step in ALL_STEPS:
        steps.add_row(step, str(summary["stepsDone"].get(step, 0)))
    console.print(steps)
    st = Table(title="instances by status")
    st.add_column("status")
    st.add_column("instances", justify="right")
    for status, n in sorted(summary["statuses"].items()):
        st.add_row(cell(status), str(n))
    console.print(st)
    shown = [r for r in summary["rows"] if args.all or r["status"] != "done"]
    if shown:
        t = Table(title="instances" if args.all else "instances not done")
        for col in ("instance", "status", "job", "detail"):
            t.add_column(col, overflow="fold")
        if len(shown) > STATUS_ROWS:
            t.caption = f"... {len(shown) - STATUS_ROWS} more (--json lists all)"
        for r in shown[:STATUS_ROWS]:
            detail = ""
            if r["error"]:
                detail = (
                    f"{r['error'].get('step')}: {r['error'].get('code')}: "
                    f"{r['error'].get('message')}"
                )
            elif r["quarantine"]:
                q = r["quarantine"]
                detail = f"{q.get('reason')}: {q.get('code')}: {q.get('message')}"
            t.add_row(
                cell(r["key"]),
                cell(r["status"]),
                cell(r["jobStatus"] or ""),
                cell(shorten(detail, 240)),
            )
        console.print(t)
    return EXIT_OK
