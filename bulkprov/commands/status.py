"""``bulkprov status``: a ledger summarised per step and per instance, from the ledger
alone (no Graph call).

A ledger of a run across many tenants is summarised per tenant too (profile, tenant id and
instances by status), and ``--tenant PROFILE`` limits every figure and list to that profile's
instances."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Collection
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from .. import ledger as ledger_mod
from ..display import cell, printable
from ..exitcodes import ExitCode
from ..redact import shorten
from ..tenancy import describe, selected

STATUS_ROWS = 200  # instances `status` lists before it says how many more there are
IN_PROGRESS = "in progress"  # an instance with no final record (yet)


def _row(key: str, st: ledger_mod.InstanceState, many: bool) -> dict[str, Any]:
    final = st.record
    row: dict[str, Any] = {
        "key": key,
        "status": st.status or IN_PROGRESS,
        "applicationId": st.ids.get("applicationId"),
        "servicePrincipalId": st.ids.get("servicePrincipalId"),
        "jobId": st.ids.get("jobId"),
        "jobStatus": final.job_status if final else None,
        "error": final.error.to_json() if final and final.error else None,
        "quarantine": final.quarantine if final else None,
        "stepsDone": sorted(st.done),
        "removed": sorted(kind for kind, _id in st.removed),
    }
    if many:
        row["profile"] = st.profile
    return row


def _tenants(
    replay: ledger_mod.Replay, profiles: Collection[str], rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """profile -> its tenant id, Graph and instances by status, for ``profiles``."""
    by_profile: dict[str, Counter[str]] = {p: Counter() for p in profiles}
    for r in rows:
        if r["profile"] in by_profile:
            by_profile[r["profile"]][r["status"]] += 1
    return {
        p: {
            "tenant": replay.tenants[p].tenant,
            "graph": replay.tenants[p].graph,
            "instances": sum(c.values()),
            "statuses": dict(sorted(c.items())),
        }
        for p, c in sorted(by_profile.items())
    }


def status_summary(
    replay: ledger_mod.Replay,
    profiles: Collection[str] | None = None,
) -> dict[str, Any]:
    """The summary ``status`` prints (``--json`` as is). A ledger of a run across many tenants
    gives each row its ``profile`` and adds ``tenants`` (see :func:`_tenants`); ``profiles``
    then limits the summary to those profiles' instances (default: every profile's)."""
    many = bool(replay.tenants)
    wanted = set(replay.tenants if profiles is None else profiles)
    statuses: Counter[str] = Counter()
    steps_done: Counter[str] = Counter()
    rows = []
    for key, st in replay.instances.items():
        if many and st.profile not in wanted:
            continue
        statuses[st.status or IN_PROGRESS] += 1
        for step in st.done:
            steps_done[step] += 1
        rows.append(_row(key, st, many))
    summary: dict[str, Any] = {
        "runs": replay.runs,
        "commands": dict(replay.commands),
        "instances": len(rows),
        "statuses": dict(statuses),
        "stepsDone": dict(steps_done),
        "tornLastLine": replay.torn,
        "header": {
            k: v
            for k, v in (replay.header.to_json() if replay.header else {}).items()
            if k != "salt"
        },
        "rows": rows,
    }
    if many:
        summary["tenants"] = _tenants(replay, sorted(wanted), rows)
    return summary


def _profiles(path: Path, replay: ledger_mod.Replay, only: list[str] | None) -> list[str] | None:
    """The profiles ``--tenant`` selects (None: a ledger of one tenant, and no --tenant).
    An unknown profile, or --tenant with a ledger of one tenant, is a LedgerError."""
    if not replay.tenants and not only:
        return None
    return selected(path, replay.tenants, only)


def cmd_status(args: argparse.Namespace) -> int:
    replay = ledger_mod.read(args.ledger)
    profiles = _profiles(args.ledger, replay, getattr(args, "only_tenants", None))
    summary = status_summary(replay, profiles)
    if args.json:
        sys.stdout.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode() + "\n")
        return ExitCode.OK
    console = Console(highlight=False)
    console.print(_headline(args.ledger, replay, summary), markup=False)
    if "tenants" in summary and len(replay.tenants) > 1:
        console.print(_tenant_table(summary))
    steps = Table(title="steps done")
    steps.add_column("step")
    steps.add_column("instances", justify="right")
    from ..steps import ALL_STEPS

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
        console.print(_instance_table(shown, args.all, "tenants" in summary))
    return ExitCode.OK


def _headline(path: Path, replay: ledger_mod.Replay, summary: dict[str, Any]) -> str:
    """``LEDGER: manifest M, tenant T, N run(s), K instances``; a ledger of many tenants names
    them (those --tenant selected, of how many)."""
    header = summary["header"]
    if "tenants" in summary:
        tenants = describe(summary["tenants"])
        if len(summary["tenants"]) < len(replay.tenants):
            tenants += f" of {len(replay.tenants)}"
    else:
        tenants = f"tenant {printable(header.get('tenant'))}"
    return (
        f"{path}: manifest {printable(header.get('manifest'))}, {tenants}, "
        f"{summary['runs']} run(s), {summary['instances']} instances"
    )


def _tenant_table(summary: dict[str, Any]) -> Table:
    """One row per tenant: its profile, tenant id and instances by status."""
    tenants = summary["tenants"]
    statuses = sorted({s for t in tenants.values() for s in t["statuses"]})
    table = Table(title="instances by tenant")
    table.add_column("profile")
    table.add_column("tenant", overflow="fold")
    table.add_column("instances", justify="right")
    for status in statuses:
        table.add_column(cell(status), justify="right")
    for profile, t in tenants.items():
        table.add_row(
            cell(profile),
            cell(t["tenant"]),
            str(t["instances"]),
            *(str(t["statuses"].get(s, 0)) for s in statuses),
        )
    return table


def _detail(r: dict[str, Any]) -> str:
    if r["error"]:
        e = r["error"]
        return f"{e.get('step')}: {e.get('code')}: {e.get('message')}"
    if r["quarantine"]:
        q = r["quarantine"]
        return f"{q.get('reason')}: {q.get('code')}: {q.get('message')}"
    return ""


def _instance_table(shown: list[dict[str, Any]], every: bool, many: bool) -> Table:
    """The instances listed (every one with --all, else those not done), with their profile
    when the ledger is of many tenants."""
    t = Table(title="instances" if every else "instances not done")
    cols = (
        ("instance", "profile", "status", "job", "detail")
        if many
        else ("instance", "status", "job", "detail")
    )
    for col in cols:
        t.add_column(col, overflow="fold")
    if len(shown) > STATUS_ROWS:
        t.caption = f"... {len(shown) - STATUS_ROWS} more (--json lists all)"
    for r in shown[:STATUS_ROWS]:
        profile = (cell(r["profile"] or ""),) if many else ()
        t.add_row(
            cell(r["key"]),
            *profile,
            cell(r["status"]),
            cell(r["jobStatus"] or ""),
            cell(shorten(_detail(r), 240)),
        )
    return t
