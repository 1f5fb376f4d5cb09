"""A live progress display for runs (only on a terminal), and the final summary table."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from .pipeline import ALL_STEPS, Events


class Progress(Events):
    """Counts steps and instances; renders them with rich when attached to a terminal."""

    def __init__(self, total: int, console: Console, client_stats: Any = None) -> None:
        self.total = total
        self.console = console
        self.client_stats = client_stats
        self.in_flight: Counter[str] = Counter()
        self.done: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.instances: Counter[str] = Counter()
        self.t0 = time.monotonic()
        self._live: Live | None = None

    def step_started(self, step: str) -> None:
        self.in_flight[step] += 1

    def step_ended(self, step: str, ok: bool) -> None:
        self.in_flight[step] -= 1
        (self.done if ok else self.failed)[step] += 1

    def instance_ended(self, status: str) -> None:
        self.instances[status] += 1

    def render(self) -> Table:
        elapsed = time.monotonic() - self.t0
        finished = sum(self.instances.values())
        rate = (finished - self.instances["skipped"]) / elapsed if elapsed > 0 else 0.0
        left = self.total - finished
        eta = f"{left / rate:.0f}s" if rate > 0 else "-"
        table = Table(
            title=f"bulkprov: {finished}/{self.total} instances  {rate:.1f}/s  ETA {eta}",
            expand=False,
        )
        table.add_column("step")
        table.add_column("in flight", justify="right")
        table.add_column("done", justify="right")
        table.add_column("failed", justify="right")
        for step in ALL_STEPS:
            table.add_row(
                step, str(self.in_flight[step]), str(self.done[step]), str(self.failed[step])
            )
        stats = self.client_stats
        if stats is not None:
            table.caption = (
                f"requests {stats.requests}  429s {stats.throttled}  "
                f"retries {stats.retries}  "
                + "  ".join(f"{k} {v}" for k, v in sorted(self.instances.items()))
            )
        return table

    def __enter__(self) -> Progress:
        if self.console.is_terminal:
            self._live = Live(
                self.render(),
                console=self.console,
                refresh_per_second=4,
                get_renderable=self.render,
                transient=False,
            )
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
