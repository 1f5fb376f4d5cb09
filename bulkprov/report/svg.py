"""The report's charts, as inline SVG (no script, no external resource, styled by classes).

Every text in a chart is escaped here: names come from users.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from .numbers import duration, ms_text, percentile, tick_ms

#: Class of each status category's colour (the page's CSS gives the colours).
CATEGORY_CLASS = {
    "done": "c-done",
    "quarantined": "c-quar",
    "failed": "c-fail",
    "not yet done": "c-todo",
    "removed": "c-gone",
}


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _f(x: float) -> str:
    """A coordinate, short."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def nice_step(span: float, ticks: int = 6) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) giving about ``ticks`` ticks."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * power:
            return float(m * power)
    return float(10 * power)


def _svg(width: int, height: int, label: str, body: list[str], cls: str) -> str:
    return (
        f'<svg class="chart {cls}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_e(label)}">'
        f"<title>{_e(label)}</title>" + "".join(body) + "</svg>"
    )


# ---------------------------------------------------------------------- race plot
@dataclass(frozen=True, slots=True)
class Race:
    """One run's finished instances over time, against the write quota's bound."""

    label: str
    finished: Sequence[float]  # real seconds since the run began: done or quarantined
    failed: Sequence[float]  # ... failed, timed out or interrupted
    set_up: Sequence[float]  # ... set up (through start): what the write quota bounds
    burst: float  # writes the quota's bucket holds at the start
    rate: float  # writes it refills per real second
    per_instance: float  # writes an instance of this run sent, on average

    @property
    def total(self) -> int:
        """The run's instances (those it set up, for a run stopped before they finished)."""
        return max(len(self.finished) + len(self.failed), len(self.set_up))

    def bound(self, t: float) -> float:
        """The most instances the write quota lets finish by ``t`` (all of the run's)."""
        if self.per_instance <= 0:
            return float(self.total)
        return min(float(self.total), (self.burst + self.rate * t) / self.per_instance)

    def bound_reaches_all(self) -> float:
        """When the quota would let every instance of the run finish (real seconds)."""
        if self.per_instance <= 0 or self.rate <= 0:
            return 0.0
        return max(0.0, (self.total * self.per_instance - self.burst) / self.rate)


W, H = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 24, 34, 44


def _steps(times: Sequence[float], sx: float, sy: float, x0: float, y0: float) -> str:
    """A cumulative count as a step line, at most one point per pixel column."""
    points = [(x0, y0)]
    last_px = -1
    ordered = sorted(times)
    for i, t in enumerate(ordered, start=1):
        px = x0 + t * sx
        if int(px) == last_px and i < len(ordered):
            continue
        last_px = int(px)
        points += [(px, points[-1][1]), (px, y0 - i * sy)]
    return " ".join(f"{_f(x)},{_f(y)}" for x, y in points)


def race_chart(race: Race) -> str:
    """Finished and failed instances over time, with the quota's bound as a dashed line."""
    end = max([*race.finished, *race.failed, *race.set_up, 0.001])
    reach = race.bound_reaches_all()
    xmax = end * 1.04 if reach > 3 * end else max(end, reach) * 1.04
    ymax = max(1, race.total)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    sx, sy = pw / xmax, ph / ymax
    x0, y0 = float(LEFT), float(TOP + ph)
    body = [_axes(xmax, ymax, sx, sy, x0, y0, pw)]
    if race.per_instance > 0:
        body.append(_bound_line(race, xmax, sx, sy, x0, y0))
    if race.set_up:
        body.append(
            f'<polyline class="line c-setup-s" points="{_steps(race.set_up, sx, sy, x0, y0)}"/>'
        )
    body.append(
        f'<polyline class="line c-done-s" points="{_steps(race.finished, sx, sy, x0, y0)}"/>'
    )
    if race.failed:
        body.append(
            f'<polyline class="line c-fail-s" points="{_steps(race.failed, sx, sy, x0, y0)}"/>'
        )
    body.append(_race_legend(race))
    return _svg(W, H, race.label, body, "race")


def _axes(xmax: float, ymax: int, sx: float, sy: float, x0: float, y0: float, pw: int) -> str:
    parts = []
    ystep = max(1.0, nice_step(ymax, 5))
    y = 0.0
    while y <= ymax + 1e-9:
        py = y0 - y * sy
        parts.append(
            f'<line class="grid" x1="{_f(x0)}" y1="{_f(py)}" x2="{_f(x0 + pw)}" y2="{_f(py)}"/>'
            f'<text class="tick" x="{_f(x0 - 6)}" y="{_f(py + 4)}" text-anchor="end">'
            f"{int(y):,}</text>"
        )
        y += ystep
    xstep = nice_step(xmax, 7)
    x = 0.0
    while x <= xmax + 1e-9:
        px = x0 + x * sx
        parts.append(
            f'<line class="grid" x1="{_f(px)}" y1="{_f(y0)}" x2="{_f(px)}" y2="{_f(y0 + 4)}"/>'
            f'<text class="tick" x="{_f(px)}" y="{_f(y0 + 18)}" text-anchor="middle">'
            f"{_e(duration(x) if x else '0')}</text>"
        )
        x += xstep
    parts.append(
        f'<line class="axis" x1="{_f(x0)}" y1="{_f(y0)}" x2="{_f(x0 + pw)}" y2="{_f(y0)}"/>'
        f'<text class="axis-label" x="{_f(x0 + pw / 2)}" y="{H - 6}" text-anchor="middle">'
        "time since the run began</text>"
        f'<text class="axis-label" x="14" y="{_f(y0 - (y0 - TOP) / 2)}" text-anchor="middle" '
        f'transform="rotate(-90 14 {_f(y0 - (y0 - TOP) / 2)})">instances</text>'
    )
    return "".join(parts)


def _bound_line(race: Race, xmax: float, sx: float, sy: float, x0: float, y0: float) -> str:
    reach = race.bound_reaches_all()
    ts = [0.0, min(reach, xmax)]
    if reach < xmax:
        ts.append(xmax)
    pts = [(x0 + t * sx, y0 - race.bound(t) * sy) for t in ts]
    line = " ".join(f"{_f(x)},{_f(y)}" for x, y in pts)
    area = f"{_f(x0)},{_f(y0)} {line} {_f(pts[-1][0])},{_f(y0)}"
    return (
        f'<polygon class="bound-area" points="{area}"/>'
        f'<polyline class="line bound" points="{line}"/>'
    )


def _race_legend(race: Race) -> str:
    items = []
    if race.set_up:
        items.append(("c-setup-s", f"set up ({len(race.set_up):,})"))
    items.append(("c-done-s", f"done or quarantined ({len(race.finished):,})"))
    if race.failed:
        items.append(("c-fail-s", f"failed ({len(race.failed):,})"))
    if race.per_instance > 0:
        items.append(("bound", "write-quota bound on set up"))
    parts, x = [], float(LEFT)
    for cls, text in items:
        parts.append(
            f'<line class="line {cls}" x1="{_f(x)}" y1="14" x2="{_f(x + 22)}" y2="14"/>'
            f'<text class="legend" x="{_f(x + 28)}" y="18">{_e(text)}</text>'
        )
        x += 40 + 6.6 * len(text)
    return "".join(parts)


# ---------------------------------------------------------------------- time per step
@dataclass(frozen=True, slots=True)
class StepDist:
    step: str
    ok: Sequence[tuple[int, str]]  # (ms, instance key) of each done record
    errors: Sequence[tuple[int, str]]  # ... of each error record

    @property
    def all_ms(self) -> list[int]:
        return sorted([ms for ms, _ in self.ok] + [ms for ms, _ in self.errors])


Scale = Callable[[float], float]  # milliseconds -> x
SW, ROW, LABEL, STATS = 760, 36, 128, 150
STRIP_MAX = 400  # points drawn per step at most (evenly taken from its sorted samples)


def _log_scale(lo: int, hi: int) -> tuple[float, float]:
    a = math.floor(math.log10(max(1, lo)))
    b = math.ceil(math.log10(max(10, hi)))
    return float(a), float(max(b, a + 1))


def _jitter(key: str) -> float:
    """A fixed vertical offset in [-1, 1) for a key (the same in every rendering)."""
    h = 0
    for ch in key:
        h = (h * 131 + ord(ch)) % 1_000_003
    return (h % 2000) / 1000 - 1


def step_chart(dists: Sequence[StepDist]) -> str:
    """A row per step: its durations as points on a log axis, a box from the 25th to the
    75th percentile with the median marked, and the median and 90th percentile as text; the
    step of the largest median is drawn in the accent colour."""
    rows = [d for d in dists if d.all_ms]
    if not rows:
        return ""
    everything = [ms for d in rows for ms in d.all_ms]
    a, b = _log_scale(min(everything), max(everything))
    pw = SW - LABEL - STATS - 16
    height = 30 + ROW * len(rows) + 34

    def px(ms: float) -> float:
        return LABEL + (math.log10(max(1, ms)) - a) / (b - a) * pw

    slowest = max(rows, key=lambda d: percentile(d.all_ms, 50)).step
    body = [_log_axis(a, b, px, height, len(rows))]
    for i, d in enumerate(rows):
        body.append(_step_row(d, 30 + ROW * i + ROW / 2, px, slowest == d.step and len(rows) > 1))
    return _svg(SW, height, "time per step, across instances", body, "steps")


def _log_axis(a: float, b: float, px: Scale, height: int, n: int) -> str:
    parts = []
    bottom = 30 + ROW * n
    for power in range(int(a), int(b) + 1):
        for m in (1, 2, 5):
            ms = m * 10**power
            if math.log10(ms) > b + 1e-9:
                break
            x = px(ms)
            cls = "grid" if m == 1 else "grid minor"
            parts.append(f'<line class="{cls}" x1="{_f(x)}" y1="24" x2="{_f(x)}" y2="{bottom}"/>')
            if m == 1 or b - a <= 3:
                parts.append(
                    f'<text class="tick" x="{_f(x)}" y="{bottom + 16}" text-anchor="middle">'
                    f"{_e(tick_ms(ms))}</text>"
                )
    parts.append(
        f'<text class="axis-label" x="{LABEL + (SW - LABEL - STATS - 16) / 2}" y="{height - 4}" '
        'text-anchor="middle">time the step took (log scale)</text>'
        f'<text class="axis-label" x="{SW - STATS + 8}" y="18">median / 90th pct</text>'
    )
    return "".join(parts)


def _strip(samples: Sequence[tuple[int, str]]) -> list[tuple[int, str]]:
    ordered = sorted(samples)
    if len(ordered) <= STRIP_MAX:
        return ordered
    return [ordered[i * len(ordered) // STRIP_MAX] for i in range(STRIP_MAX)]


def _step_row(d: StepDist, cy: float, px: Scale, slow: bool) -> str:
    ms = d.all_ms
    q1, med, q3, p90 = (percentile(ms, p) for p in (25, 50, 75, 90))
    cls = "box slow" if slow else "box"
    label = d.step + (" (slowest)" if slow else "")
    parts = [
        f'<text class="step-label{" slow" if slow else ""}" x="{LABEL - 8}" y="{_f(cy + 4)}" '
        f'text-anchor="end">{_e(label)}</text>',
        f'<line class="whisker" x1="{_f(px(ms[0]))}" y1="{_f(cy)}" x2="{_f(px(ms[-1]))}" '
        f'y2="{_f(cy)}"/>',
        f'<rect class="{cls}" x="{_f(px(q1))}" y="{_f(cy - 9)}" '
        f'width="{_f(max(1.5, px(q3) - px(q1)))}" height="18" rx="2"/>',
    ]
    for value, key in _strip(d.ok):
        parts.append(
            f'<circle class="dot" cx="{_f(px(value))}" cy="{_f(cy + 7 * _jitter(key))}" r="1.8"/>'
        )
    for value, key in _strip(d.errors):
        x, y = px(value), cy + 7 * _jitter(key)
        parts.append(
            f'<path class="err" d="M{_f(x - 3)},{_f(y - 3)}l6,6m0,-6l-6,6"><title>'
            f"{_e(key)}: error after {_e(ms_text(value))}</title></path>"
        )
    parts.append(
        f'<line class="median" x1="{_f(px(med))}" y1="{_f(cy - 11)}" x2="{_f(px(med))}" '
        f'y2="{_f(cy + 11)}"/>'
        f'<text class="stat" x="{SW - STATS + 8}" y="{_f(cy + 4)}">'
        f"{_e(ms_text(med))} / {_e(ms_text(p90))}</text>"
    )
    return "".join(parts)


# ---------------------------------------------------------------------- stacked bar
def stack_bar(counts: Sequence[tuple[str, int]], width: int = 180, height: int = 12) -> str:
    """A small bar split by status category: [(category, count), ...]."""
    total = sum(n for _, n in counts)
    if total <= 0:
        return ""
    parts, x = [], 0.0
    for category, n in counts:
        if n <= 0:
            continue
        w = width * n / total
        parts.append(
            f'<rect class="{CATEGORY_CLASS.get(category, "c-todo")}" x="{_f(x)}" y="0" '
            f'width="{_f(w)}" height="{height}"><title>{_e(category)}: {n:,}</title></rect>'
        )
        x += w
    label = ", ".join(f"{n:,} {c}" for c, n in counts if n)
    return (
        f'<svg class="bar" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{_e(label)}">' + "".join(parts) + "</svg>"
    )
