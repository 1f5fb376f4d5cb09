"""``bulkprov status``: a ledger summarised per step and per instance, from the ledger
alone (no Graph call)."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from .. import ledger as ledger_mod
from ..display import cell, printable
from ..exitcodes import ExitCode
from ..redact import shorten

STATUS_ROWS = 200  # instances `status` lists before it says how many more there are


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
            k: v
            for k, v in (replay.header.to_json() if replay.header else {}).items()
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
