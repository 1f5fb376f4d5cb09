"""Progress displays: what is set up and what is done, a rate and an ETA from what moves, and
plain progress lines in a log (stderr not a terminal) for run, cleanup and export."""

from __future__ import annotations

import csv
import io
import itertools
import re
import time
from pathlib import Path

import pytest
from rich.console import Console

from bulkprov import ledger as ledger_mod
from bulkprov.mockgraph import MockGraph
from bulkprov.progress import Progress, TaskProgress, eta_text

from .enginekit import AWS, aws_manifest, run_engine, write_secrets
from .opskit import cli

LINE = re.compile(
    r"^set up (\d+)/(\d+), done (\d+)/(\d+), failed (\d+), [\d.]+/s, ETA (\S+)$", re.M
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def plain_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=False, width=60, highlight=False), out


class TestRunProgress:
    def test_setup_moves_before_anything_is_done(self) -> None:
        """Instances count as set up when their setup ends; the rate and the ETA are setup's
        while it goes on, so the line moves long before the first job cycle ends."""
        clock = FakeClock()
        console, _out = plain_console()
        p = Progress(300, console, interval=0, clock=clock)
        assert p.line() == "set up 0/300, done 0/300, failed 0, 0.0/s, ETA -"
        clock.now += 10
        for _ in range(30):
            p.setup_ended(True)
        p.setup_ended(False)
        p.instance_ended("failed")
        assert p.line() == "set up 30/300, done 0/300, failed 1, 3.0/s, ETA 1m30s"

    def test_rate_follows_the_last_thirty_seconds(self) -> None:
        """The rate is measured over the last 30 s: a fast burst at the start no longer
        inflates it a minute later."""
        clock = FakeClock()
        p = Progress(1000, plain_console()[0], interval=0, clock=clock)
        for _ in range(300):
            p.setup_ended(True)
        clock.now += 1
        p.line()
        for step in range(60):
            clock.now += 1
            p.setup_ended(True)
            if step % 5 == 0:
                p.line()  # the display samples as it redraws
        assert p.line().endswith(", 1.0/s, ETA 10m40s")

    def test_finishing_rate_once_everything_is_set_up(self) -> None:
        """Once every instance is set up (or failed, or skipped), the rate and ETA are those
        of instances finishing; skipped instances count as set up and done."""
        clock = FakeClock()
        p = Progress(10, plain_console()[0], interval=0, clock=clock)
        for _ in range(2):
            p.instance_ended("skipped")
        for _ in range(8):
            p.setup_ended(True)
        clock.now += 4
        for _ in range(4):
            p.instance_ended("done")
        assert p.line() == (
            "set up 10/10, done 6/10, failed 0, skipped 2 (already finished), 1.0/s, ETA 4s"
        )
        for status in ("done", "done", "quarantined", "timeout"):
            p.instance_ended(status)
        assert p.line().startswith("set up 10/10, done 8/10, quarantined 1, failed 1, ")
        assert p.line().endswith(", ETA 0s")

    def test_plain_lines_while_it_runs_and_one_at_the_end(self) -> None:
        """Not on a terminal, the display prints plain lines (no live redraw), and a last one
        when it closes; on a terminal it prints none of them."""
        console, out = plain_console()
        p = Progress(5, console, interval=0.001)
        with p:
            p.setup_ended(True)
            deadline = time.monotonic() + 30
            while out.getvalue().count("\n") < 2 and time.monotonic() < deadline:
                p._stop.wait(0.001)  # the display's own thread prints: wait for two lines
            p.setup_ended(True)
        lines = out.getvalue().splitlines()
        assert len(lines) >= 3 and all(line.startswith("set up ") for line in lines)
        assert lines[-1].startswith("set up 2/5, done 0/5, failed 0, ")
        assert "\x1b" not in out.getvalue() and "┃" not in out.getvalue()

        tty_out = io.StringIO()
        tty = Console(file=tty_out, force_terminal=True, width=100)
        with Progress(5, tty, interval=0.001) as live:
            live.setup_ended(True)
        assert "set up 1/5" in tty_out.getvalue() and "in flight" in tty_out.getvalue()
        assert not LINE.search(tty_out.getvalue())

    def test_interval_zero_prints_nothing(self) -> None:
        """--progress-every 0 switches the plain lines off."""
        console, out = plain_console()
        with Progress(5, console, interval=0) as p:
            p.setup_ended(True)
        assert out.getvalue() == ""

    def test_eta_text(self) -> None:
        """ETAs read as seconds, minutes or hours."""
        assert [eta_text(s) for s in (None, 0.4, 58, 245, 7380)] == [
            "-",
            "0s",
            "58s",
            "4m05s",
            "2h03m",
        ]


class TestTaskProgress:
    def test_counts_and_eta(self) -> None:
        """A cleanup's progress: items done of the total, failures, a rate and an ETA."""
        clock = FakeClock()
        p = TaskProgress(
            "cleanup", "instances", plain_console()[0], total=20, interval=0, clock=clock
        )
        clock.now += 5
        for ok in [True] * 9 + [False]:
            p.advance(ok)
        assert p.line() == "cleanup: 9/20 instances, failed 1, 2.0/s, ETA 5s"
        export = TaskProgress(
            "export",
            "service principals read",
            plain_console()[0],
            pending="listing service principals",
            interval=0,
            clock=clock,
        )
        assert export.line() == "export: listing service principals"
        clock.now += 2
        export.update(3, 3)
        assert export.line() == "export: 3/3 service principals read, 1.5/s, ETA 0s"


def _mixed_manifest(path: Path, good: int, bad: int) -> Path:
    """``good`` AWS instances the mock accepts and ``bad`` whose access key id it rejects."""
    write_secrets(path.parent / "secrets")
    write_secrets(path.parent / "bad", key_id="not-an-access-key-id")
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["key", "displayName", "template", "cred.ClientSecret", "cred.SecretToken"])
        for i in range(good + bad):
            where = "secrets" if i < good else "bad"
            w.writerow(
                [
                    f"p-{i:03d}",
                    f"AWS progress {i:03d}",
                    AWS,
                    f"file:{where}/key-id",
                    f"file:{where}/secret",
                ]
            )
    return path


@pytest.mark.anyio
class TestInALog:
    async def test_run_prints_periodic_lines_with_the_right_counts(
        self, mock: MockGraph, tmp_path: Path
    ) -> None:
        """A run whose stderr is not a terminal prints a progress line every
        --progress-every seconds: set up moves ahead of done, the counts never go back, and
        the last line agrees with the ledger (failed instances included)."""
        manifest = _mixed_manifest(tmp_path / "m.csv", good=24, bad=4)
        ledger = tmp_path / "l.jsonl"
        code, _out, err = await cli(
            mock,
            tmp_path,
            "run",
            str(manifest),
            "--ledger",
            str(ledger),
            "--progress-every",
            "0.02",
        )
        assert code == 1, err[-2000:]
        found = [tuple(m.groups()) for m in LINE.finditer(err)]
        assert len(found) >= 3, err[-2000:]
        counts = [(int(s), int(d), int(f)) for s, total, d, total2, f, _eta in found]
        assert all(total == total2 == "28" for _s, total, _d, total2, _f, _e in found)
        for before, after in itertools.pairwise(counts):
            assert all(b <= a for b, a in zip(before, after, strict=True)), (before, after)
        assert all(d <= s for s, d, _f in counts)
        assert any(s > d for s, d, _f in counts), "set up never ran ahead of done"
        assert counts[-1] == (24, 24, 4) and found[-1][-1] == "0s"
        statuses = [s.status for s in ledger_mod.read(ledger).instances.values()]
        assert statuses.count("done") == 24 and statuses.count("failed") == 4

    async def test_cleanup_and_export_show_progress(self, mock: MockGraph, tmp_path: Path) -> None:
        """cleanup and export print their progress lines too, ending with every item."""
        ledger = tmp_path / "l.jsonl"
        result = await run_engine(
            mock, aws_manifest(tmp_path / "m.csv", 5, start=False), ledger, monitor=False
        )
        assert result.statuses["done"] == 5
        code, _out, err = await cli(
            mock, tmp_path, "export", "--out", str(tmp_path / "x"), "--progress-every", "0.01"
        )
        assert code == 0, err
        assert re.search(r"^export: 5/5 service principals read, [\d.]+/s, ETA 0s$", err, re.M)
        code, _out, err = await cli(
            mock, tmp_path, "cleanup", str(ledger), "--yes", "--progress-every", "0.01"
        )
        assert code == 0, err
        assert re.search(r"^cleanup: 5/5 instances, [\d.]+/s, ETA 0s$", err, re.M), err
