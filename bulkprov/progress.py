"""Progress of a run, a cleanup or an export: a live display on a terminal, plain lines elsewhere.

On a terminal, rich redraws the display four times a second. When stderr is not a terminal
(a CI log, a pipe), a plain line is printed every ``interval`` real seconds (5 by default)
and once more at the end, so that a log shows life::

    set up 120/300, done 40/300, failed 0, 3.1/s, ETA 58s

A run's instance counts as *set up* once its last setup step ended (``start``, usually), and
as *done* once its job's first cycle ended: at Graph's pace, setup is what moves for most of
the run. The rate and the ETA are those of setup while instances are still being set up, then
those of finishing; a rate is measured over the last 30 seconds, so it follows the pace of
the moment (Graph's burst of writes first, its steady quota after).

The counters are written by the event loop and read by the display's thread; they are plain
integers and keyed look-ups, never iterated while the loop may add to them.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .steps import ALL_STEPS
from .steps.base import Events

DEFAULT_INTERVAL = 5.0  # real seconds between plain progress lines
RATE_WINDOW = 30.0  # real seconds a rate is measured over

Clock = Callable[[], float]


def eta_text(seconds: float | None) -> str:
    """``58s``, ``4m05s``, ``2h03m``, or ``-`` when it cannot be told."""
    if seconds is None:
        return "-"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def rate_text(rate: float) -> str:
    return f"{rate:.2f}/s" if 0 < rate < 1 else f"{rate:.1f}/s"


class Rate:
    """Events per second over the last ``window`` seconds, from counts sampled by the reader."""

    def __init__(self, start: float, window: float = RATE_WINDOW) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque([(start, 0)])

    def sample(self, now: float, count: int) -> float:
        samples = self._samples
        samples.append((now, count))
        # keep the newest sample at or before the window's start as the baseline
        while len(samples) > 2 and samples[1][0] <= now - self.window:
            samples.popleft()
        t, c = samples[0]
        return (count - c) / (now - t) if now > t else 0.0


class _Display:
    """Live display on a terminal, else a plain line every ``interval`` s and one at the end."""

    transient = False

    def __init__(self, console: Console, *, interval: float, clock: Clock) -> None:
        self.console = console
        self.interval = interval
        self.clock = clock
        self.t0 = clock()
        self._live: Live | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._plain = False

    def line(self) -> str:
        raise NotImplementedError

    def renderable(self) -> RenderableType:
        return Text(self.line())

    def _emit(self) -> None:
        self.console.print(self.line(), markup=False, highlight=False, soft_wrap=True)

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            self._emit()

    def __enter__(self) -> Any:
        if self.console.is_terminal:
            self._live = Live(
                self.renderable(),
                console=self.console,
                refresh_per_second=4,
                get_renderable=self.renderable,
                transient=self.transient,
            )
            self._live.__enter__()
        elif self.interval > 0:
            self._plain = True
            self._thread = threading.Thread(target=self._tick, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self._plain = False  # the error says what happened; a last count would not
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        if self._plain:
            self._plain = False
            self._emit()


class Progress(_Display, Events):
    """A run's progress: instances set up and done, and each step in flight, done and failed."""

    def __init__(
        self,
        total: int,
        console: Console,
        client_stats: Any = None,
        *,
        interval: float = DEFAULT_INTERVAL,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(console, interval=interval, clock=clock)
        self.total = total
        self.client_stats = client_stats
        self.in_flight: Counter[str] = Counter()
        self.steps_done: Counter[str] = Counter()
        self.steps_failed: Counter[str] = Counter()
        self.set_up = 0  # this run: setup ended well
        self.setup_failed = 0  # this run: setup ended by a failure or a drain
        self.done = 0
        self.quarantined = 0
        self.failed = 0  # failed or timed out, in setup or monitoring
        self.interrupted = 0
        self.skipped = 0  # already finished in the ledger
        self._setup_rate = Rate(self.t0)
        self._finish_rate = Rate(self.t0)
        # a run across many tenants: profile -> its part (``total``, ``ended``, ``failed``)
        self.tenants: Mapping[str, Any] = {}

    # ------------------------------------------------------------------ events
    def step_started(self, step: str) -> None:
        self.in_flight[step] += 1

    def step_ended(self, step: str, ok: bool) -> None:
        self.in_flight[step] -= 1
        (self.steps_done if ok else self.steps_failed)[step] += 1

    def setup_ended(self, ok: bool) -> None:
        if ok:
            self.set_up += 1
        else:
            self.setup_failed += 1

    def instance_ended(self, status: str) -> None:
        if status == "done":
            self.done += 1
        elif status == "quarantined":
            self.quarantined += 1
        elif status == "skipped":
            self.skipped += 1
        elif status == "interrupted":
            self.interrupted += 1
        else:  # failed, timeout
            self.failed += 1

    # ------------------------------------------------------------------ figures
    @property
    def setup_left(self) -> int:
        return max(0, self.total - self.skipped - self.set_up - self.setup_failed)

    @property
    def finish_left(self) -> int:
        ended = self.done + self.quarantined + self.failed + self.interrupted + self.skipped
        return max(0, self.total - ended)

    def figures(self) -> tuple[float, float | None]:
        """The rate that moves now (setup's, then finishing's) and the ETA it gives."""
        now = self.clock()
        setup_rate = self._setup_rate.sample(now, self.set_up)
        finish_rate = self._finish_rate.sample(
            now, self.done + self.quarantined + self.failed + self.interrupted
        )
        left, rate = self.setup_left, setup_rate
        if left == 0:
            left, rate = self.finish_left, finish_rate
        if left == 0:
            return rate, 0.0
        return rate, (left / rate if rate > 0 else None)

    def line(self) -> str:
        rate, eta = self.figures()
        parts = [
            f"set up {self.set_up + self.skipped}/{self.total}",
            f"done {self.done + self.skipped}/{self.total}",
        ]
        if self.quarantined:
            parts.append(f"quarantined {self.quarantined}")
        parts.append(f"failed {self.failed}")
        if self.interrupted:
            parts.append(f"interrupted {self.interrupted}")
        if self.skipped:
            parts.append(f"skipped {self.skipped} (already finished)")
        parts += [rate_text(rate), f"ETA {eta_text(eta)}"]
        if self.tenants:
            parts.append(self.tenants_text())
        return ", ".join(parts)

    def behind(self, shown: int) -> list[tuple[str, Any]]:
        """The ``shown`` tenants with the largest share still to end, the furthest first."""
        parts = [(name, t) for name, t in self.tenants.items() if t.ended < t.total]
        parts.sort(key=lambda p: (p[1].ended / max(1, p[1].total), p[0]))
        return parts[:shown]

    def tenants_text(self) -> str:
        """``tenants 12/20 finished, behind: contoso 120/250, fabrikam 200/250``."""
        finished = sum(1 for t in self.tenants.values() if t.ended >= t.total)
        text = f"tenants {finished}/{len(self.tenants)} finished"
        behind = self.behind(2)
        if behind:
            text += ", behind: " + ", ".join(f"{n} {t.ended}/{t.total}" for n, t in behind)
        return text

    def renderable(self) -> RenderableType:
        table = Table(title=f"bulkprov: {self.line()}", expand=False)
        table.add_column("step")
        table.add_column("in flight", justify="right")
        table.add_column("done", justify="right")
        table.add_column("failed", justify="right")
        for step in ALL_STEPS:
            table.add_row(
                step,
                str(self.in_flight[step]),
                str(self.steps_done[step]),
                str(self.steps_failed[step]),
            )
        stats = self.client_stats
        if stats is not None:
            table.caption = (
                f"requests {stats.requests}  429s {stats.throttled}  retries {stats.retries}"
            )
        if not self.tenants:
            return table
        return Group(table, self._tenants_table())

    def _tenants_table(self) -> Table:
        """Each tenant still going (the 10 furthest behind, when there are more)."""
        behind = self.behind(10)
        more = sum(1 for t in self.tenants.values() if t.ended < t.total) - len(behind)
        table = Table(title=self.tenants_text(), expand=False)
        for col in ("tenant", "ended", "of", "failed"):
            table.add_column(col, justify="left" if col == "tenant" else "right")
        for name, t in behind:
            table.add_row(name, str(t.ended), str(t.total), str(t.failed))
        if more > 0:
            table.caption = f"and {more} more tenants still going"
        return table


class TaskProgress(_Display):
    """Progress through a known number of items (a cleanup's instances, an export's reads)."""

    transient = True

    def __init__(
        self,
        label: str,
        unit: str,
        console: Console,
        *,
        total: int | None = None,
        pending: str = "starting",
        interval: float = DEFAULT_INTERVAL,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(console, interval=interval, clock=clock)
        self.label = label
        self.unit = unit
        self.total = total
        self.pending = pending  # what the line says while the total is not known
        self.done = 0
        self.failed = 0
        self._rate = Rate(self.t0)

    def advance(self, ok: bool = True) -> None:
        if ok:
            self.done += 1
        else:
            self.failed += 1

    def update(self, done: int, total: int) -> None:
        """Set the counts (``done`` of ``total`` items)."""
        self.total = total
        self.done = done

    def line(self) -> str:
        total = self.total
        if total is None:
            return f"{self.label}: {self.pending}"
        ended = self.done + self.failed
        rate = self._rate.sample(self.clock(), ended)
        left = max(0, total - ended)
        eta = 0.0 if left == 0 else (left / rate if rate > 0 else None)
        failed = f", failed {self.failed}" if self.failed else ""
        return (
            f"{self.label}: {self.done}/{total} {self.unit}{failed}, {rate_text(rate)}, "
            f"ETA {eta_text(eta)}"
        )
