"""``bulkprov plan``: what a run of a manifest would do to each instance (the decisions of
:mod:`bulkprov.planner`), sending no write to Graph."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import orjson
from rich.console import Console
from rich.table import Table

from .. import ledger as ledger_mod
from .. import planner
from ..cliconnect import connection_options
from ..client import GraphClient
from ..connect import (
    AppShares,
    ConnectionOptions,
    Target,
    client_settings,
    target,
    tenant_targets,
)
from ..display import cell
from ..errors import GraphError, ManifestError
from ..exitcodes import ExitCode
from ..graph import Graph
from ..jsontypes import JSON
from ..log import configure
from ..manifest import Instance, ManifestSummary, iter_instances, validate
from ..pipeline import ResolvedTemplate
from ..planner import TemplateNeeds
from ..pool import open_pool
from ..refs import RefRules
from ..run import read_needs, resolve_agent_groups, resolve_templates
from ..settings import Credential
from .common import ref_rules, stderr_console

LOOKUPS = 32  # applications looked up by name at once by `plan`


def cmd_plan(args: argparse.Namespace) -> int:
    configure(console_level="warning")
    console = Console(highlight=False)
    opts = connection_options(args)
    rules = ref_rules(opts, args.secrets_dir)
    summary = validate(args.manifest, allow_inline_secrets=args.allow_inline_secrets, rules=rules)
    if summary.problems:
        raise ManifestError(summary.problems)
    if (note := summary.shared_note()) is not None:
        stderr_console().print(f"note: {note}", markup=False, soft_wrap=True)
    if args.offline:
        console.print(
            f"{args.manifest}: {summary.count} instances, "
            f"{len(summary.templates)} distinct templates; the manifest is valid"
        )
        return ExitCode.OK
    replay = ledger_mod.read(args.ledger) if args.ledger and args.ledger.exists() else None

    job = _PlanJob(args, opts, summary, rules, replay, opts.profile_name(), AppShares(opts))
    rows = anyio.run(job.plan)
    changes: dict[str, int] = {}
    if replay is not None:  # day 2: finished instances whose manifest line changed; dropped ones
        from .. import updates

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
class _PlanJob:
    """A plan of the manifest: in its one tenant, or in each tenant its rows name, at once."""

    args: argparse.Namespace
    opts: ConnectionOptions
    summary: ManifestSummary
    rules: RefRules
    replay: ledger_mod.Replay | None
    default: str | None  # the profile of rows naming none
    shares: AppShares  # the tenants' clients share the app's limits

    async def plan(self) -> list[JSON]:
        summary, default = self.summary, self.default
        profiles = summary.profile_names(default, self.args.only_tenants)
        kept = self.args.ledger if self.replay is not None else None
        if not profiles:
            async with target(self.opts, ledger=kept) as tgt:
                return await self.tenant(tgt, None)
        parts: list[list[JSON]] = []  # each tenant planned at once, the rows in manifest order
        every = summary.profile_names(default)
        async with tenant_targets(self.opts, profiles, ledger=kept, every_profile=every) as targets:

            async def one(profile: str, tgt: Target) -> None:
                parts.append(await self.tenant(tgt, profile))

            async with anyio.create_task_group() as tg:
                for profile, tgt in targets:
                    tg.start_soon(one, profile, tgt)
        return sorted((r for part in parts for r in part), key=_line)

    async def tenant(self, tgt: Target, profile: str | None) -> list[JSON]:
        """The rows of one tenant (``profile``; None: the manifest's one tenant)."""
        args, summary = self.args, self.summary
        settings = client_settings(self.opts, tgt.time_scale)
        async with GraphClient(tgt.conn, settings, app_paces=self.shares.paces(tgt)) as client:
            graph = Graph(client)
            templates = await resolve_templates(graph, summary)
            planning = _Planning(
                graph,
                templates,
                await read_needs(graph, templates),
                tgt.conn.credential,
                self.replay,
                on_existing=args.on_existing,
            )
            if summary.agent_groups and planning.credential.delegated:
                planning.groups = await resolve_agent_groups(graph, summary)
            instances = iter_instances(
                args.manifest,
                allow_inline_secrets=args.allow_inline_secrets,
                rules=self.rules,
                profile=profile,
                default_profile=self.default,
            )
            rows = await planning.rows(instances)
        if profile is not None:
            for row in rows:
                row["profile"] = profile
        return rows


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

    def __post_init__(self) -> None:
        self.claimed = self.replay.claimed("applicationId") if self.replay else {}

    async def rows(self, instances: Iterable[Instance]) -> list[JSON]:
        """A row per instance, in the manifest's order; those whose decision needs a lookup
        are filled in by the lookup workers as their answers come."""
        rows: list[JSON] = []
        async with open_pool(self.lookup, workers=LOOKUPS) as lookups:
            for inst in instances:
                row = self.row(inst)
                rows.append(row)
                decision = self.decide(inst)
                if decision.action == "lookup":
                    await lookups.put((inst, row))
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

    async def lookup(self, item: tuple[Instance, JSON]) -> None:
        """The decisions that depend on the applications of the instance's name."""
        inst, row = item
        try:
            apps = await self.graph.applications_named(inst.display_name)
        except GraphError as err:
            row["action"] = "unknown"
            row["note"] = f"{err.status} {err.code}"
            return
        self.fill(row, self.decide(inst, apps))


def _line(row: JSON) -> int:
    """A plan row's manifest line (its ``where``: ``FILE:LINE``)."""
    return int(str(row["where"]).rsplit(":", 1)[-1])


def _print_plan(console: Console, manifest: Path, rows: list[JSON], counts: Counter[str]) -> None:
    table = Table(
        title=f"plan for {manifest}: " + ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
    )
    # a profile column for a manifest of many tenants, a schema column if some row has one
    profiled = any("profile" in r for r in rows)
    schemas = any(r["schema"] for r in rows)
    shown = {"profile": profiled, "schema": schemas}
    cols = ("instance", "line", "profile", "displayName", "template", "schema", "action", "note")
    for col in cols:
        if shown.get(col, True):
            table.add_column(col, overflow="fold")
    for r in rows[:25]:
        table.add_row(
            cell(r["key"]),
            cell(r["where"].rsplit(":", 1)[-1]),
            *([cell(r.get("profile", ""))] if profiled else []),
            cell(r["displayName"]),
            cell(r["template"]),
            *(["yes" if r["schema"] else ""] if schemas else []),
            cell(r["action"]),
            cell(r.get("note", "")),
        )
    if len(rows) > 25:
        table.caption = f"... {len(rows) - 25} more (--json lists all)"
    console.print(table)
