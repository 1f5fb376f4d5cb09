"""The report as one self-contained HTML page: headline, race plot, time per step, the
instances that need attention, and the breakdowns per template and per tenant.

Every value shown passes through :class:`Text`: masked by the run's :class:`Redactor`, then
HTML-escaped. The page requests nothing from anywhere (see :mod:`.assets`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from ..redact import Redactor
from .assets import CSS, JS, content_security_policy
from .model import (
    DONE,
    FAILED,
    NOT_DONE,
    QUARANTINED,
    REMOVED,
    Instance,
    LedgerModel,
    Report,
    Run,
)
from .numbers import duration, ms_text, percentile
from .svg import Race, StepDist, race_chart, stack_bar, step_chart
from .tables import attention_section
from .tenants import tenant_table
from .text import Text

CATEGORIES = (DONE, QUARANTINED, FAILED, NOT_DONE)
MESSAGE = 600  # characters of an error message shown


@dataclass(frozen=True, slots=True, kw_only=True)
class ChartSettings:
    """How the race plot's quota line is drawn."""

    write_limit: int = 3000  # writes ...
    write_window: float = 150.0  # ... per this many Graph seconds (Graph's app + tenant quota)
    time_scale: float = 1.0  # real seconds per Graph second (the mock's; 1 for Graph)
    time_scale_source: str = "Graph"  # where the time scale came from, for the note
    races: int = 4  # runs plotted at most (the latest)


def render(
    report: Report,
    *,
    redactor: Redactor | None = None,
    settings: ChartSettings | None = None,
    generated: str = "",
) -> str:
    """The page, as text."""
    t = Text(redactor or Redactor())
    settings = settings or ChartSettings()
    body = [
        _title(report, t, generated),
        _headline(report, t),
        _race_section(report, t, settings),
        _step_section(report, t),
        attention_section(report, t, MESSAGE),
        _breakdowns(report, t),
        _notes(report, t),
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{content_security_policy()}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{t(_page_title(report))}</title>"
        '<link rel="icon" href="data:,">'
        f"<style>{CSS}</style></head>\n<body><main>\n"
        + "\n".join(part for part in body if part)
        + f"\n</main><script>{JS}</script></body></html>\n"
    )


def _page_title(report: Report) -> str:
    names = ", ".join(m.path.name for m in report.ledgers)
    return f"bulkprov report: {names}"


def _title(report: Report, t: Text, generated: str) -> str:
    spans = []
    for m in report.ledgers:
        h = m.header
        spans.append(
            f"<span>ledger <code>{t(m.path)}</code></span>"
            f"<span>manifest <code>{t(h.get('manifest') or '?')}</code></span>"
            f"<span>{'tenants' if m.tenants else 'tenant'} <code>{t(m.tenant)}</code></span>"
            f"<span>Graph <code>{t(h.get('graph') or '?')}</code></span>"
            f"<span>created {t(h.get('created') or '?')}</span>"
        )
    if report.live_at:
        spans.append(f"<span>jobs read live at {t(report.live_at)}</span>")
    if generated:
        spans.append(f"<span>report made {t(generated)}</span>")
    return (
        "<header><h1>bulkprov report</h1>"
        + "".join(f'<p class="meta">{s}</p>' for s in spans)
        + "</header>"
    )


# ---------------------------------------------------------------------- headline
def counts(instances: Iterable[Instance]) -> Counter[str]:
    return Counter(i.category for i in instances)


def wall_time(runs: Iterable[Run]) -> float:
    return sum(max(0.0, r.end - r.start) for r in runs if r.start is not None and r.end)


def _card(cls: str, n: str, label: str) -> str:
    return f'<div class="card {cls}"><div class="n">{n}</div><div class="l">{label}</div></div>'


def _headline(report: Report, t: Text) -> str:
    c = counts(report.instances)
    runs = [r for m in report.ledgers for r in m.runs]
    cards = [
        _card("", f"{len(report.instances):,}", "instances"),
        _card("done", f"{c[DONE]:,}", "done"),
        _card("quar", f"{c[QUARANTINED]:,}", "quarantined"),
        _card("fail", f"{c[FAILED]:,}", "failed"),
        _card("todo", f"{c[NOT_DONE]:,}", "not yet done"),
    ]
    if c[REMOVED]:
        cards.append(_card("gone", f"{c[REMOVED]:,}", "removed by cleanup"))
    cards.append(_card("", t(duration(wall_time(runs))), f"wall time, {len(runs)} run(s)"))
    if report.client is not None:
        cards += [
            _card("", f"{report.client.requests:,}", "requests"),
            _card("", f"{report.client.throttled:,}", "429s"),
        ]
    live = ""
    if report.live_at:
        states = Counter(i.live.status for i in report.instances if i.live is not None)
        shown = ", ".join(f"{n:,} {t(s)}" for s, n in sorted(states.items())) or "no job"
        failing = sum(1 for i in report.instances if i.live is not None and i.live.failures)
        if failing:
            shown += f"; {failing:,} with provisioning failures since the ledger began"
        live = f'<p class="note">Jobs now: {shown}.</p>'
    return (
        '<section class="headline"><h2>Headline</h2>'
        f'<div class="cards">{"".join(cards)}</div>{live}</section>'
    )


# ---------------------------------------------------------------------- race plot
def _races(report: Report, settings: ChartSettings) -> list[tuple[LedgerModel, Run]]:
    runs = [(m, r) for m in report.ledgers for r in m.runs if (r.finished or r.set_up) and r.start]
    return runs[-settings.races :]


def race_for(model: LedgerModel, run: Run, settings: ChartSettings, many: bool) -> Race:
    start = run.start or 0.0
    set_up = [t - start for t in run.set_up.values()]
    ok = [t - start for t, status in run.finished if status in ("done", "quarantined")]
    bad = [t - start for t, status in run.finished if status not in ("done", "quarantined")]
    n = len(run.finished)
    touched = max(n, len(run.keys))  # the instances it wrote for, finished or not
    where = f"{model.path.name}, " if many else ""
    return Race(
        label=f"{where}run {run.index + 1}: {n:,} instances finished over time",
        finished=ok,
        failed=bad,
        set_up=set_up,
        burst=float(settings.write_limit),
        rate=settings.write_limit / settings.write_window / settings.time_scale,
        per_instance=run.writes / touched if touched else 0.0,
    )


def _race_section(report: Report, t: Text, settings: ChartSettings) -> str:
    races = _races(report, settings)
    if not races:
        return (
            '<section class="race"><h2>Instances finished over time</h2>'
            '<p class="empty">No run of these ledgers finished an instance yet.</p></section>'
        )
    many = len(report.ledgers) > 1
    parts = []
    for model, run in races:
        race = race_for(model, run, settings, many)
        span = duration((run.end or 0) - (run.start or 0))
        parts.append(
            f"<h3>{t(race.label)} (began {t(run.at)}, {t(span)})</h3>{race_chart(race)}"
            f'<p class="note">{_bound_note(race, settings, t)}</p>'
        )
    return (
        '<section class="race"><h2>Instances finished over time</h2>'
        + "".join(parts)
        + "</section>"
    )


def _bound_note(race: Race, settings: ChartSettings, t: Text) -> str:
    if race.per_instance <= 0:
        return "The ledger records no write of this run: no quota line."
    reach = race.bound_reaches_all()
    when = (
        "its first burst covers every instance of the run"
        if reach <= 0
        else f"it lets the last of them be set up after {t(duration(reach))} at the soonest"
    )
    return (
        f"Dashed: the most instances Graph's write quota ({settings.write_limit:,} writes per "
        f"{settings.write_window:g} s, starting full) lets be set up, at "
        f"{race.per_instance:.1f} writes per instance as this run sent them; {when}. Done "
        "comes later: after the job's first cycle and its provisioning logs (monitor, logs). "
        f"Time scale {settings.time_scale:g} real s per Graph s ({t(settings.time_scale_source)})."
    )


# ---------------------------------------------------------------------- time per step
def step_dists(report: Report) -> list[StepDist]:
    from ..records import Step

    by_step: dict[str, tuple[list[tuple[int, str]], list[tuple[int, str]]]] = {}
    for s in report.samples:
        ok, bad = by_step.setdefault(s.step, ([], []))
        (ok if s.ok else bad).append((s.ms, s.key))
    order = [str(s) for s in Step] + sorted(k for k in by_step if k not in set(Step))
    return [StepDist(k, *by_step[k]) for k in order if k in by_step]


def _step_section(report: Report, t: Text) -> str:
    dists = step_dists(report)
    if not dists:
        return ""
    rows = []
    total = sum(sum(d.all_ms) for d in dists) or 1
    for d in dists:
        ms = d.all_ms
        rows.append(
            f"<tr><td>{t(d.step)}</td><td class='num'>{len(d.ok):,}</td>"
            f"<td class='num'>{len(d.errors):,}</td>"
            + "".join(
                f"<td class='num'>{t(ms_text(v))}</td>"
                for v in (percentile(ms, 50), percentile(ms, 90), ms[-1], sum(ms))
            )
            + f"<td class='num'>{100 * sum(ms) / total:.0f}%</td></tr>"
        )
    head = "".join(
        f"<th{' class=num' if i else ''}>{h}</th>"
        for i, h in enumerate(
            ("step", "done", "errors", "median", "90th pct", "longest", "total", "share")
        )
    )
    return (
        '<section class="steps"><h2>Time per step</h2>'
        '<p class="note">Each dot is one instance\'s step (a cross: the step failed); the box '
        "spans the middle half, the bar in it is the median. A resumed run's steps count "
        "again.</p>"
        f"{step_chart(dists)}"
        f'<div class="scroll"><table class="step-table"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div></section>"
    )


# ---------------------------------------------------------------------- breakdowns
def _breakdown_table(title: str, groups: dict[str, list[Instance]], t: Text) -> str:
    head = "".join(f"<th class='num'>{h}</th>" for h in ("instances", *CATEGORIES, "median time"))
    rows = []
    for name, members in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        c = counts(members)
        secs = sorted(i.seconds for i in members if i.seconds is not None)
        median = t(duration(percentile(secs, 50))) if secs else ""
        rows.append(
            f"<tr><td>{t(name)}</td><td class='num'>{len(members):,}</td>"
            + "".join(f"<td class='num'>{c[k]:,}</td>" for k in CATEGORIES)
            + f"<td class='num'>{median}</td>"
            f"<td>{stack_bar([(k, c[k]) for k in (*CATEGORIES, REMOVED)])}</td></tr>"
        )
    return (
        f"<h3>{t(title)}</h3><div class='scroll'><table class='breakdown'><thead><tr>"
        f"<th>{t(title.split()[-1])}</th>{head}<th></th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _breakdowns(report: Report, t: Text) -> str:
    by_template: dict[str, list[Instance]] = {}
    for i in report.instances:
        by_template.setdefault(i.template or i.template_id or "(not recorded)", []).append(i)
    parts = [_breakdown_table("per template", by_template, t), tenant_table(report, t)]
    if report.many_tenants:
        parts.reverse()  # a run across many tenants: its tenants first
    return '<section class="breakdowns"><h2>Breakdown</h2>' + "".join(parts) + "</section>"


# ---------------------------------------------------------------------- notes
def _notes(report: Report, t: Text) -> str:
    notes: list[str] = list(report.notes)
    if report.client is None:
        notes.append(
            "Requests and 429s are not in the ledger: `bulkprov report --summary-json FILE` "
            "shows them from the summary `bulkprov run --summary-json FILE` wrote."
        )
    for m in report.ledgers:
        if m.manifest_note:
            notes.append(f"{m.path.name}: {m.manifest_note}.")
        if m.torn:
            notes.append(
                f"{m.path.name}: its last line is torn (a run was killed while "
                "writing it); the report leaves it out."
            )
        other = ", ".join(f"{n} {c}" for c, n in sorted(m.commands.items()))
        if other:
            notes.append(f"{m.path.name}: also written by {other}.")
    if not notes:
        return ""
    items = "".join(f"<li>{t(n)}</li>" for n in notes)
    return f'<section class="notes"><h2>Notes</h2><ul class="note">{items}</ul></section>'
