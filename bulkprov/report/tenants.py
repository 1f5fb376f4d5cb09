"""The report's table per tenant: each tenant's instances by status, the median time an
instance took and the tenant's makespan, the worst tenants first.

A tenant is a profile of a run across many tenants (shown with its tenant's id), or the
tenant of a one-tenant ledger (its id). A report of many tenants lists the
:data:`SHOWN` worst in the table and the others, folded, below it, so that a fleet of a
hundred tenants still reads at a glance: the tenants that need attention are on top."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from .model import DONE, FAILED, NOT_DONE, QUARANTINED, REMOVED, Instance, Report
from .numbers import duration, percentile
from .svg import stack_bar
from .text import Text

CATEGORIES = (DONE, QUARANTINED, FAILED, NOT_DONE)
SHOWN = 20  # tenants listed before the others are folded away


@dataclass(slots=True)
class TenantRow:
    """One tenant's instances, as the table shows them."""

    profile: str | None  # None: a one-tenant ledger's tenant
    tenant: str  # the tenant id
    members: list[Instance] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.profile if self.profile is not None else self.tenant

    @property
    def counts(self) -> Counter[str]:
        return Counter(i.category for i in self.members)

    @property
    def trouble(self) -> int:
        """The instances that are not done: failed, quarantined or not yet done."""
        c = self.counts
        return c[FAILED] + c[QUARANTINED] + c[NOT_DONE]


def tenant_rows(report: Report) -> list[TenantRow]:
    """One row per tenant, the worst first: the most instances failed, quarantined or not
    done, then the most failed, then by name."""
    rows: dict[tuple[str | None, str], TenantRow] = {}
    for i in report.instances:
        key = (i.profile, i.tenant)
        rows.setdefault(key, TenantRow(i.profile, i.tenant)).members.append(i)
    return sorted(rows.values(), key=lambda r: (-r.trouble, -r.counts[FAILED], r.name, r.tenant))


def makespan(report: Report, members: Iterable[Instance]) -> float | None:
    """The time from each run's start to the last of ``members`` it finished, summed over the
    runs (None: no run finished one)."""
    last: dict[tuple[int, int], float] = {}
    for i in members:
        if i.run is None or i.ended is None:
            continue
        at = (i.ledger, i.run)
        last[at] = max(last.get(at, i.ended), i.ended)
    spans = []
    for (ledger, run), end in last.items():
        start = report.ledgers[ledger].runs[run].start
        if start is not None:
            spans.append(max(0.0, end - start))
    return sum(spans) if spans else None


def _row(report: Report, row: TenantRow, t: Text, ids: bool, timed: bool) -> str:
    c = row.counts
    secs = sorted(i.seconds for i in row.members if i.seconds is not None)
    median = t(duration(percentile(secs, 50))) if secs else ""
    span = makespan(report, row.members) if timed else None
    cells = [f"<td>{t(row.name)}</td>"]
    if ids:
        cells.append(f"<td class='id'>{t(row.tenant if row.profile is not None else '')}</td>")
    cells.append(f"<td class='num'>{len(row.members):,}</td>")
    cells += [f"<td class='num'>{c[k]:,}</td>" for k in CATEGORIES]
    cells.append(f"<td class='num'>{median}</td>")
    if timed:
        cells.append(f"<td class='num'>{t(duration(span)) if span is not None else ''}</td>")
    cells.append(f"<td>{stack_bar([(k, c[k]) for k in (*CATEGORIES, REMOVED)])}</td>")
    return f"<tr>{''.join(cells)}</tr>"


def _table(body: str, ids: bool, timed: bool) -> str:
    names = [
        "tenant",
        *(["tenant id"] if ids else []),
        "instances",
        *CATEGORIES,
        "median time",
        *(["makespan"] if timed else []),
    ]
    head = "".join(f"<th{'' if n.startswith('tenant') else ' class=num'}>{n}</th>" for n in names)
    return (
        "<div class='scroll'><table class='breakdown tenants'><thead><tr>"
        f"{head}<th></th></tr></thead><tbody>{body}</tbody></table></div>"
    )


def _summary(rows: list[TenantRow]) -> str:
    done = sum(1 for r in rows if r.trouble == 0)
    bad = sum(1 for r in rows if r.counts[FAILED] or r.counts[QUARANTINED])
    todo = sum(1 for r in rows if r.counts[NOT_DONE])
    parts = [f"{done:,} with every instance done"]
    if bad:
        parts.append(f"{bad:,} with instances failed or quarantined")
    if todo:
        parts.append(f"{todo:,} with instances not yet done")
    return f"{len(rows):,} tenants: {', '.join(parts)}. The worst first."


def tenant_table(report: Report, t: Text) -> str:
    """The table per tenant (empty when the report is of one tenant)."""
    rows = tenant_rows(report)
    if len(rows) < 2:
        return ""
    ids = any(r.profile is not None for r in rows)
    timed = any(i.run is not None and i.ended is not None for i in report.instances)
    shown, folded = rows[:SHOWN], rows[SHOWN:]
    html = (
        f"<h3>per tenant</h3><p class='note'>{t(_summary(rows))}"
        + (
            " Makespan: from each run's start to the last of the tenant's instances it "
            "finished, summed over the runs."
            if timed
            else ""
        )
        + "</p>"
        + _table("".join(_row(report, r, t, ids, timed) for r in shown), ids, timed)
    )
    if folded:
        fine = sum(1 for r in folded if r.trouble == 0)
        html += (
            f"<details><summary>{len(folded):,} more tenants ({fine:,} with every instance "
            "done)</summary>"
            + _table("".join(_row(report, r, t, ids, timed) for r in folded), ids, timed)
            + "</details>"
        )
    return html
