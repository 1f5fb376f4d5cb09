"""The ``run``, ``plan``, ``export`` and ``status`` commands."""

from __future__ import annotations

import argparse
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
from .client import GraphClient
from .connect import client_settings, target
from .errors import ConfigError, GraphError, ManifestError
from .graph import Graph
from .ledger import Redactor
from .log import configure
from .manifest import iter_instances, validate
from .progress import Progress
from .run import Runner, resolve_agent_groups, resolve_templates
from .settings import RunSettings

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_QUARANTINE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


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
    # validate before anything else: a bad manifest makes no Graph call at all
    summary = validate(args.manifest, allow_inline_secrets=args.allow_inline_secrets)
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
                f"{tgt.label}; ledger {args.ledger}"
            )
            async with GraphClient(tgt.conn, client_settings(args, tgt.time_scale)) as client:
                progress = Progress(summary.count, console, client.stats)
                runner = Runner(
                    manifest=args.manifest,
                    ledger_path=args.ledger,
                    client=client,
                    settings=settings,
                    allow_inline_secrets=args.allow_inline_secrets,
                    events=progress,
                    redactor=redactor,
                    ledger_graph=tgt.ledger_graph,
                )
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_signals, runner, tg.cancel_scope, console)
                    with progress:
                        result = await runner.run()
                    tg.cancel_scope.cancel()
                return result, client.stats, tgt.label

    result, stats, label = anyio.run(main)
    _print_run_summary(console, result, stats, args.ledger)
    if args.summary_json is not None:
        args.summary_json.write_bytes(
            orjson.dumps(
                {
                    "total": result.total,
                    "skipped": result.skipped,
                    "statuses": dict(result.statuses),
                    "elapsed": result.elapsed,
                    "client": stats.as_dict(),
                    "failures": result.failures,
                    "target": label,
                },
                option=orjson.OPT_INDENT_2,
            )
        )
    if result.interrupted or result.statuses["interrupted"]:
        return EXIT_INTERRUPTED
    if result.failed:
        return EXIT_FAILED
    if result.statuses["quarantined"]:
        return EXIT_QUARANTINE
    return EXIT_OK


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


def _print_run_summary(console: Console, result: Any, stats: Any, ledger: Path) -> None:
    table = Table(title="bulkprov run")
    table.add_column("status")
    table.add_column("instances", justify="right")
    for status, n in sorted(result.statuses.items()):
        table.add_row(status, str(n))
    table.add_row("(already finished, skipped)", str(result.skipped))
    table.caption = (
        f"{result.elapsed:.1f}s  requests {stats.requests}  429s {stats.throttled}"
        f"  retries {stats.retries}  ledger {ledger}"
    )
    console.print(table)
    if result.failures:
        failures = Table(title="failures (first 20)")
        for col in ("instance", "where", "step", "code", "message"):
            failures.add_column(col, overflow="fold")
        for f in result.failures:
            failures.add_row(
                f["key"], f["where"], f["step"], str(f.get("code")), str(f["message"])[:200]
            )
        console.print(failures)


def cmd_plan(args: argparse.Namespace) -> int:
    configure(console_level="warning")
    console = Console(highlight=False)
    summary = validate(args.manifest, allow_inline_secrets=args.allow_inline_secrets)
    if summary.problems:
        raise ManifestError(summary.problems)
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
            delegated = tgt.conn.credential.delegated
            groups: dict[str, str] = {}
            if summary.agent_groups and delegated:
                groups = await resolve_agent_groups(graph, summary)
            rows: list[dict[str, Any]] = []
            limiter = anyio.CapacityLimiter(32)

            async def one(inst: Any, row: dict[str, Any]) -> None:
                async with limiter:
                    st = replay.instances.get(inst.key) if replay else None
                    if st is not None and st.finished:
                        row["action"] = str(st.status)  # done | quarantined (in the ledger)
                        return
                    if st is not None and st.ids.get("applicationId"):
                        row["action"] = "resume"
                        row["applicationId"] = st.ids["applicationId"]
                        return
                    tpl = templates[inst.template]
                    try:
                        apps = await graph.find_applications(tpl.id, inst.display_name)
                    except GraphError as err:
                        row["action"] = "unknown"
                        row["note"] = f"{err.status} {err.code}"
                        return
                    claimed = replay.claimed("applicationId") if replay else {}
                    apps = [a for a in apps if a["id"] not in claimed]
                    if not apps:
                        row["action"] = "create"
                        other = await _other_template(graph, inst.display_name, tpl.id)
                        if other:
                            row["action"] = "conflict"
                            row["note"] = other
                    elif len(apps) == 1:
                        row["action"] = "adopt" if args.on_existing == "adopt" else "conflict"
                        row["applicationId"] = apps[0]["id"]
                    else:
                        row["action"] = "conflict"
                        row["note"] = f"{len(apps)} applications with this name and template"

            async with anyio.create_task_group() as tg:
                for inst in iter_instances(
                    args.manifest, allow_inline_secrets=args.allow_inline_secrets
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
                        if not delegated:
                            row["action"] = "refuse"
                            row["note"] = (
                                "agentGroup needs delegated permissions: use a device-code "
                                f"profile (this connection is app-only, {tgt.conn.credential.kind})"
                            )
                            continue
                        row["agentGroupId"] = groups[inst.agent_group]
                        row["note"] = f"assign agent group {inst.agent_group}"
                    tg.start_soon(one, inst, row)
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
                r["key"],
                r["where"].rsplit(":", 1)[-1],
                r["displayName"],
                r["template"],
                "yes" if r["schema"] else "",
                r["action"],
                r.get("note", ""),
            )
        if len(rows) > 25:
            table.caption = f"... {len(rows) - 25} more (--json lists all)"
        console.print(table)
    return EXIT_FAILED if counts.get("conflict") or counts.get("refuse") else EXIT_OK


async def _other_template(graph: Graph, display_name: str, template_id: str) -> str | None:
    """Why an application of this name blocks the instance (it comes from another template)."""
    others = [
        a
        for a in await graph.applications_named(display_name)
        if a.get("applicationTemplateId") != template_id
    ]
    if not others:
        return None
    tpl = others[0].get("applicationTemplateId") or "no gallery template"
    return (
        f"an application named {display_name!r} exists from another template ({tpl}, "
        f"application {others[0].get('id')})"
    )


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
            return await export(Graph(client), out, flt, source=source)

    result = anyio.run(main)
    console.print(
        f"bulkprov: exported {len(result.instances)} instances "
        f"({result.scanned} gallery service principals matched) to {result.manifest}"
    )
    for name, why in result.skipped:
        console.print(f"  note: {name}: {why}")
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
        final = st.final or {}
        rows.append(
            {
                "key": key,
                "status": st.status or "in progress",
                "applicationId": st.ids.get("applicationId"),
                "servicePrincipalId": st.ids.get("servicePrincipalId"),
                "jobId": st.ids.get("jobId"),
                "jobStatus": final.get("jobStatus"),
                "error": final.get("error"),
                "quarantine": final.get("quarantine"),
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
        "header": {k: v for k, v in (replay.header or {}).items() if k != "salt"},
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
        f"{args.ledger}: manifest {header.get('manifest')}, tenant "
        f"{header.get('tenant')}, {summary['runs']} run(s), "
        f"{summary['instances']} instances"
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
        st.add_row(status, str(n))
    console.print(st)
    shown = [r for r in summary["rows"] if args.all or r["status"] != "done"]
    if shown:
        t = Table(title="instances" if args.all else "instances not done")
        for col in ("instance", "status", "job", "detail"):
            t.add_column(col, overflow="fold")
        for r in shown[:200]:
            detail = ""
            if r["error"]:
                detail = (
                    f"{r['error'].get('step')}: {r['error'].get('code')}: "
                    f"{r['error'].get('message')}"
                )
            elif r["quarantine"]:
                q = r["quarantine"]
                detail = f"{q.get('reason')}: {q.get('code')}: {q.get('message')}"
            t.add_row(r["key"], r["status"], str(r["jobStatus"] or ""), detail[:240])
        console.print(t)
    return EXIT_OK
