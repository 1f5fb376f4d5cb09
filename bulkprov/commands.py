"""The ``run``, ``plan``, ``export`` and ``status`` commands."""

from __future__ import annotations

import argparse
import signal
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import orjson
from rich.console import Console
from rich.table import Table

from . import ledger as ledger_mod
from . import planner
from .cliconnect import connection_options
from .client import ClientStats, GraphClient
from .connect import ConnectionOptions, client_settings, target
from .display import cell, printable
from .errors import ConfigError, GraphError, ManifestError
from .exitcodes import ExitCode
from .files import check_writable, write_atomic
from .graph import Graph
from .jsontypes import JSON
from .ledger import Redactor
from .log import configure
from .manifest import Instance, iter_instances, validate
from .pipeline import ResolvedTemplate
from .planner import TemplateNeeds
from .progress import Progress, TaskProgress
from .redact import shorten
from .refs import RefRules
from .run import Runner, RunResult, read_needs, resolve_agent_groups, resolve_templates
from .settings import Credential, RunSettings

STATUS_ROWS = 200  # instances `status` lists before it says how many more there are


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


def ref_rules(opts: ConnectionOptions, secrets_dirs: Sequence[Path] | None = None) -> RefRules:
    """What the manifest's references may reach: ``--secrets-dir`` and the profile's
    ``secrets_dirs`` besides the manifest's directory; never the variable or the file that
    bulkprov's own credential comes from (flags, BULKPROV_* variables, the profile)."""
    from . import profiles as profiles_mod
    from .connect import SECRET_ENV

    dirs: list[Path] = []
    for d in secrets_dirs or ():
        if not d.is_dir():
            why = "does not exist" if not d.exists() else "is not a directory"
            raise ConfigError(f"--secrets-dir {d}: {why}")
        dirs.append(d)
    own_env = {opts.client_secret_env or SECRET_ENV}
    own_files: set[Path] = set()
    for name in ("client_secret_file", "certificate_file", "mock_info"):
        value = opts.env(name)
        if value:
            own_files.add(Path(value))
    profile = opts.profile_name()
    if profile and opts.mock is None:
        path = profiles_mod.profiles_path(opts.profiles)
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
    opts = replace(connection_options(args), write_quota=args.write_quota, ru_quota=args.ru_quota)
    # validate before anything else: a bad manifest makes no Graph call at all
    rules = ref_rules(opts, args.secrets_dir)
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

    async def main() -> tuple[RunResult, ClientStats, str]:
        async with target(opts, ledger=args.ledger, create=True) as tgt:
            console.print(
                f"bulkprov: {summary.count} instances from {args.manifest} -> "
                f"{tgt.label}; ledger {args.ledger}",
                markup=False,
                soft_wrap=True,
            )
            async with GraphClient(tgt.conn, client_settings(opts, tgt.time_scale)) as client:
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
                if args.prune and not result.interrupted:  # day 2: what the manifest dropped
                    from .prune import run_prune

                    pruned.append(await run_prune(args, client, tgt.ledger_graph, rules, console))
                return result, client.stats, tgt.label

    pruned: list[bool] = []
    result, stats, label = anyio.run(main)
    _print_run_summary(console, result, stats, args.ledger, redactor)
    if pruned and not pruned[0]:
        return ExitCode.FAILED
    summary_written = args.summary_json is None or _write_summary_json(
        args, console, result, stats, label
    )
    if result.interrupted or result.statuses["interrupted"]:
        return ExitCode.INTERRUPTED
    if result.failed:
        return ExitCode.FAILED
    if result.statuses["quarantined"]:
        return ExitCode.QUARANTINED
    return ExitCode.OK if summary_written else ExitCode.USAGE


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
    opts = connection_options(args)
    rules = ref_rules(opts, args.secrets_dir)
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
        return ExitCode.OK
    replay = ledger_mod.read(args.ledger) if args.ledger and args.ledger.exists() else None

    async def main() -> list[JSON]:
        async with (
            target(opts, ledger=args.ledger if replay is not None else None) as tgt,
            GraphClient(tgt.conn, client_settings(opts, tgt.time_scale)) as client,
        ):
            graph = Graph(client)
            templates = await resolve_templates(graph, summary)
            planning = _Planning(
                graph,
                templates,
                await read_needs(graph, templates),
                tgt.conn.credential,
                replay,
                on_existing=args.on_existing,
            )
            if summary.agent_groups and planning.credential.delegated:
                planning.groups = await resolve_agent_groups(graph, summary)
            instances = iter_instances(
                args.manifest, allow_inline_secrets=args.allow_inline_secrets, rules=rules
            )
            return await planning.rows(instances)

    rows = anyio.run(main)
    changes: dict[str, int] = {}
    if replay is not None:  # day 2: finished instances whose manifest line changed; dropped ones
        from . import updates

        instances = iter_instances(
            args.manifest, allow_inline_secrets=args.allow_inline_secrets, rules=rules
        )
        rows += updates.plan_rows(rows, replay, instances, updates.comparer(args.ledger, replay))
        changes = updates.change_counts(rows)
    counts = Counter(r["action"] for r in rows)
    if args.json:
        doc = {"instances": rows, "counts": counts, "changes": changes}
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _print_plan(console, args.manifest, rows, counts)
        if changes:
            console.print("updates: " + ", ".join(f"{n} {k}" for k, n in changes.items()))
    return ExitCode.FAILED if counts.get("conflict") or counts.get("refuse") else ExitCode.OK


@dataclass(slots=True)
class _Planning:
    """What ``plan`` decides for each instance, from the templates, their needs, the
    connection's credential and the ledger; the applications of an instance's name are looked
    up (32 at once) only when the decision depends on them."""

    graph: Graph
    templates: dict[str, ResolvedTemplate]
    needs: dict[str, TemplateNeeds]
    credential: Credential
    replay: ledger_mod.Replay | None
    on_existing: str
    groups: dict[str, str] = field(default_factory=dict)  # agent group -> its id (delegated)
    claimed: dict[str, str] = field(init=False)
    limiter: anyio.CapacityLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.claimed = self.replay.claimed("applicationId") if self.replay else {}
        self.limiter = anyio.CapacityLimiter(32)

    async def rows(self, instances: Iterable[Instance]) -> list[JSON]:
        rows: list[JSON] = []
        async with anyio.create_task_group() as tg:
            for inst in instances:
                row = self.row(inst)
                rows.append(row)
                decision = self.decide(inst)
                if decision.action == "lookup":
                    tg.start_soon(self.lookup, inst, row)
                else:
                    self.fill(row, decision)
        return rows

    def row(self, inst: Instance) -> JSON:
        template = self.templates[inst.template]
        row: JSON = {
            "key": inst.key,
            "where": inst.where,
            "displayName": inst.display_name,
            "template": template.display_name,
            "templateId": template.id,
            "start": inst.start,
            "schema": inst.schema_file.name if inst.schema_file else None,
        }
        if inst.agent_group is not None:
            row["agentGroup"] = inst.agent_group
            if self.credential.delegated:
                row["agentGroupId"] = self.groups[inst.agent_group]
                row["note"] = f"assign agent group {inst.agent_group}"
        return row

    def decide(self, inst: Instance, apps: list[Any] | None = None) -> planner.Decision:
        tid = self.templates[inst.template].id
        return planner.decide(
            inst,
            self.replay.instances.get(inst.key) if self.replay else None,
            template_id=tid,
            needs=self.needs.get(tid),
            apps=apps,
            claimed=self.claimed,
            on_existing=self.on_existing,
            delegated=self.credential.delegated,
            credential_kind=self.credential.kind,
        )

    @staticmethod
    def fill(row: JSON, decision: planner.Decision) -> None:
        row["action"] = decision.action
        if decision.application_id:
            row["applicationId"] = decision.application_id
        if decision.code:
            row["code"] = decision.code
        note = "; ".join(n for n in (row.get("note"), decision.note) if n)
        if note:
            row["note"] = note

    async def lookup(self, inst: Instance, row: JSON) -> None:
        """The decisions that depend on the applications of the instance's name."""
        async with self.limiter:
            try:
                apps = await self.graph.applications_named(inst.display_name)
            except GraphError as err:
                row["action"] = "unknown"
                row["note"] = f"{err.status} {err.code}"
                return
        self.fill(row, self.decide(inst, apps))


def _print_plan(console: Console, manifest: Path, rows: list[JSON], counts: Counter[str]) -> None:
    table = Table(
        title=f"plan for {manifest}: " + ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
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


def cmd_export(args: argparse.Namespace) -> int:
    from .export import ExportFilter, export, read_ids_file

    configure(console_level="warning")
    console = _stderr()
    opts = connection_options(args)
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
            target(opts) as tgt,
            GraphClient(tgt.conn, client_settings(opts, tgt.time_scale)) as client,
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
    return ExitCode.OK


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
        return ExitCode.OK
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
    from .steps import ALL_STEPS

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
    return ExitCode.OK
