"""The table of the instances that need attention: failed, quarantined, drifted, whose job
``--live`` found in trouble, and those a run left unfinished. Sorted by a click on a column
and filtered by text, kind and (a report of several tenants) tenant by the page's script,
with no server."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from .model import FAILED, NOT_DONE, QUARANTINED, Failure, Instance, Report
from .text import Text

#: Kinds of attention, most urgent first, with the label of their filter.
KINDS = {
    "failed": "failed",
    "quarantined": "quarantined",
    "drifted": "drifted",
    "job": "job in trouble",  # --live: quarantined, deleted or unreadable now
    "unfinished": "not finished",
}
LIVE_TROUBLE = frozenset({"Quarantine", "missing", "error"})
ROWS = 10_000  # rows listed at most


def attention_kind(i: Instance) -> str | None:
    """Why an instance needs attention, or None."""
    if i.category == FAILED:
        return "failed"
    if i.category == QUARANTINED:
        return "quarantined"
    if i.drift is not None and i.drift.drifted:
        return "drifted"
    if i.live is not None and i.live.status in LIVE_TROUBLE:
        return "job"
    if i.category == NOT_DONE and i.started is not None:
        return "unfinished"
    return None


def attention(report: Report) -> list[tuple[str, Instance]]:
    """(kind, instance) of every instance that needs attention, most urgent first."""
    order = {k: n for n, k in enumerate(KINDS)}
    rows = [(k, i) for i in report.instances if (k := attention_kind(i)) is not None]
    rows.sort(key=lambda r: (order[r[0]], tenant_name(r[1]), r[1].where or "", r[1].key))
    return rows


def tenant_name(i: Instance) -> str:
    """The tenant an instance is shown under: its profile (a run across many tenants), else
    its tenant's id."""
    return i.profile if i.profile is not None else i.tenant


@dataclass(frozen=True, slots=True)
class Column:
    col: str  # its name in the page (data-col, and #sort=NAME)
    label: str
    cell: Callable[[str, Instance, Text], str]  # the <td>
    num: bool = False


def _td(text: str, cls: str = "", v: str | None = None) -> str:
    c = f' class="{cls}"' if cls else ""
    value = f' data-v="{v}"' if v is not None else ""
    return f"<td{c}{value}>{text}</td>"


def breakable(escaped: str) -> str:
    """Escaped text with a line-break opportunity inside CamelCase words (Graph's codes)."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "<wbr>", escaped)


def _failure(i: Instance) -> Failure | None:
    return i.error or i.last_error


def _kind(kind: str, i: Instance, t: Text) -> str:
    status = f'<span class="sub">{t(i.status)}</span>' if i.status != kind else ""
    return _td(
        f'<span class="pill {kind}">{t(KINDS[kind])}</span>{status}',
        v=str(list(KINDS).index(kind)),
    )


def _instance(kind: str, i: Instance, t: Text) -> str:
    name = f'<span class="sub">{t(i.display_name)}</span>' if i.display_name else ""
    return _td(f"<code>{t(i.key)}</code>{name}", "inst", v=t(i.key))


def _reason(kind: str, i: Instance, t: Text, limit: int) -> str:
    q = i.quarantine
    if kind == "quarantined" and q is not None:
        text = ": ".join(x for x in (q.reason, q.message) if x)
    elif kind == "drifted" and i.drift is not None:
        text = i.drift.message or ", ".join(i.drift.fields)
    else:
        f = _failure(i)
        text = f.message if f is not None else ""
    if kind == "job" and i.live is not None:
        text = i.live.reason or i.live.detail or ""
    return _td(breakable(t(text, limit)), "msg")


def _code(kind: str, i: Instance, t: Text) -> str:
    if kind == "quarantined" and i.quarantine is not None:
        return _td(breakable(t(i.quarantine.code)), "id")
    if kind == "job" and i.live is not None:
        return _td(breakable(t(i.live.code)), "id")
    f = _failure(i)
    return _td(breakable(t(f.code if f else "")), "id")


def _step(kind: str, i: Instance, t: Text) -> str:
    f = _failure(i)
    return _td(t(f.step if f and kind != "quarantined" else ""))


def _request(kind: str, i: Instance, t: Text) -> str:
    f = _failure(i)
    return _td(t(f.request_id if f and kind != "quarantined" else ""), "id")


def _next(kind: str, i: Instance, t: Text) -> str:
    q = i.quarantine
    live = i.live.next_attempt if i.live is not None else None
    return _td(t(short_time((q.next_attempt if q else None) or live)), "id")


def _drift(kind: str, i: Instance, t: Text) -> str:
    d = i.drift
    if d is None:
        return _td("")
    text = ("drifted: " + ", ".join(d.fields)) if d.drifted else "no drift"
    return _td(t(text.rstrip(": ")))


def _live(kind: str, i: Instance, t: Text) -> str:
    lv = i.live
    if lv is None:
        return _td('<span class="empty">no job</span>', v="")
    parts = [f"<strong>{t(lv.status)}</strong>"]
    if lv.detail and kind not in ("quarantined", "job"):  # their reason says it already
        parts.append(f'<span class="sub">{breakable(t(lv.detail, 200))}</span>')
    if lv.last_execution:
        state = lv.last_execution.split(" ")[0]
        parts.append(f'<span class="sub">last run {t(state)}</span>')
    if lv.failures:
        many = "s" if lv.failures > 1 else ""
        parts.append(f'<span class="sub">{lv.failures:,} provisioning failure{many}</span>')
    return _td("".join(parts), "live", v=t(lv.status))


def _tenant(kind: str, i: Instance, t: Text) -> str:
    tid = f'<span class="sub">{t(i.tenant)}</span>' if i.profile is not None else ""
    return _td(f"{t(tenant_name(i))}{tid}", "mono", v=t(tenant_name(i)))


def _template(kind: str, i: Instance, t: Text) -> str:
    return _td(t(i.template or i.template_id), "tpl")


def _where(kind: str, i: Instance, t: Text) -> str:
    if not i.where:
        return _td("", v="")
    file, _, line = i.where.rpartition(":")
    return _td(t(i.where), "id where", v=t(f"{file}:{line.zfill(9)}"))


def _when(kind: str, i: Instance, t: Text) -> str:
    at = i.ended or i.started
    if at is None:
        return _td("", v="0")
    when = datetime.fromtimestamp(at, UTC)
    text = f'{when:%H:%M:%S}<span class="sub">{when:%Y-%m-%d}</span>'
    return _td(text, "id", v=f"{at:.3f}")


def short_time(iso: str | None) -> str | None:
    """``2026-12-02T00:58:55.7616550Z`` -> ``2026-12-02 00:58:55Z`` (Graph's 7 digits)."""
    if not iso:
        return iso
    return re.sub(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(\.\d+)?", r"\1 \2", iso)


def columns(report: Report, limit: int) -> list[Column]:
    """The table's columns; tenant, drift, live and manifest ones only when there is
    something to show in them."""
    cols = [
        Column("kind", "attention", _kind, num=True),
        Column("instance", "instance", _instance),
        Column("template", "template", _template),
    ]
    if len(report.tenants) > 1:
        cols.append(Column("tenant", "tenant", _tenant))
    cols += [
        Column("step", "step", _step),
        Column("code", "error code", _code),
        Column("reason", "reason", lambda k, i, t: _reason(k, i, t, limit)),
        Column("request", "request id", _request),
        Column("next", "next attempt", _next),
    ]
    if report.has_drift:
        cols.append(Column("drift", "drift", _drift))
    if report.live_at:
        cols.append(Column("live", "job now", _live))
    if any(i.where for i in report.instances):
        cols.append(Column("manifest", "manifest", _where))
    cols.append(Column("when", "when (UTC)", _when, num=True))
    return cols


def _tenant_choice(tenants: Counter[str], t: Text) -> str:
    """A choice of one tenant's rows, for a report of several tenants (most rows first)."""
    if len(tenants) < 2:
        return ""
    options = "".join(
        f'<option value="{t(name)}">{t(name)} ({n:,})</option>'
        for name, n in sorted(tenants.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    return (
        '<select id="filter-tenant" aria-label="show one tenant\'s rows">'
        f'<option value="">every tenant ({sum(tenants.values()):,})</option>{options}</select>'
    )


def _controls(kinds: Counter[str], total: int, tenants: str = "") -> str:
    boxes = "".join(
        f'<label><input type="checkbox" data-kind="{k}" checked> {label} ({kinds[k]:,})</label>'
        for k, label in KINDS.items()
        if kinds[k]
    )
    return (
        '<div class="controls"><input type="search" id="filter-text" '
        'placeholder="filter rows: name, code, step, id\u2026" '
        f'aria-label="filter the rows">{tenants}{boxes}'
        f'<span id="filter-count" class="note">{total:,} of {total:,} shown</span></div>'
        '<p id="printed-filter" class="printed-filter note"></p>'
    )


def attention_section(report: Report, t: Text, limit: int) -> str:
    rows = attention(report)
    title = '<section class="attention"><h2>Needs attention</h2>'
    if not rows:
        return (
            title + '<p class="empty">Nothing needs attention: no instance failed, is '
            "quarantined, or was left unfinished.</p></section>"
        )
    cols = columns(report, limit)
    shown = rows[:ROWS]
    head = "".join(
        f'<th data-col="{c.col}"{" data-type=num" if c.num else ""} aria-sort="none">'
        f'<button type="button">{c.label}</button></th>'
        for c in cols
    )
    many = len(report.tenants) > 1
    body = "".join(
        f'<tr data-kind="{kind}"'
        + (f' data-tenant="{t(tenant_name(i))}"' if many else "")
        + ">"
        + "".join(c.cell(kind, i, t) for c in cols)
        + "</tr>"
        for kind, i in shown
    )
    choice = _tenant_choice(Counter(tenant_name(i) for _, i in shown), t) if many else ""
    more = (
        f'<p class="note">... and {len(rows) - ROWS:,} more (bulkprov status --json lists '
        "every instance).</p>"
        if len(rows) > ROWS
        else ""
    )
    return (
        title
        + _controls(Counter(k for k, _ in shown), len(shown), choice)
        + '<div class="scroll"><table id="attention" class="attention-table">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{more}</section>"
    )
