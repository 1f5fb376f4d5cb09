"""The command line's own behaviour and its tables: version, errors that name the subcommand,
help for every option, tables that say what they leave out, and names shown safely."""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from rich.console import Console

from bulkprov import cli
from bulkprov.commands import monitor as monitor_cmd
from bulkprov.commands.run import _print_run_summary
from bulkprov.commands.status import STATUS_ROWS
from bulkprov.display import cell, printable
from bulkprov.run import RunResult

FLAGS = (
    argparse._StoreTrueAction,
    argparse._StoreFalseAction,
    argparse._CountAction,
    argparse._HelpAction,
    argparse._VersionAction,
)
HIDDEN = {"--client-time-scale"}  # the benchmarks' knob, deliberately undocumented


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


class TestCommandLine:
    def test_version_comes_from_the_package_metadata(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`bulkprov --version` prints the installed package's version and exits 0."""
        with pytest.raises(SystemExit) as exit_:
            cli.main(["--version"])
        assert exit_.value.code == 0
        assert capsys.readouterr().out == f"bulkprov {importlib.metadata.version('bulkprov')}\n"

    @pytest.mark.parametrize(
        ("argv", "usage", "unknown"),
        [
            (["status", "l.jsonl", "--bogus"], "usage: bulkprov status ", "--bogus"),
            (["run", "m.csv", "--concurency", "5"], "usage: bulkprov run ", "--concurency 5"),
            (["templates", "aws", "--kyes"], "usage: bulkprov templates ", "--kyes"),
            (["--bogus", "status", "l.jsonl"], "usage: bulkprov [-h]", "--bogus"),
        ],
    )
    def test_unknown_option_shows_the_usage_of_its_subcommand(
        self, capsys: pytest.CaptureFixture[str], argv: list[str], usage: str, unknown: str
    ) -> None:
        """An unknown option is reported, with the usage, by the subcommand it was given to
        (by the top parser when it comes before the subcommand), exit code 2."""
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(usage), err
        assert err.rstrip().endswith(f"error: unrecognized arguments: {unknown}"), err

    def test_every_option_has_help_and_its_default(self) -> None:
        """Every option and positional of every subcommand has help text, and each that has
        a default shows it with %(default)s, so the help cannot drift from the code."""
        missing: list[str] = []
        parser = cli.build_parser(complete=True)
        for name, sub in {"bulkprov": parser, **subparsers(parser)}.items():
            for action in sub._actions:
                if isinstance(action, argparse._SubParsersAction):
                    continue
                label = f"{name} {'/'.join(action.option_strings) or action.dest}"
                if action.help == argparse.SUPPRESS:
                    if not set(action.option_strings) & HIDDEN:
                        missing.append(f"{label}: hidden")
                    continue
                if not (action.help or "").strip():
                    missing.append(f"{label}: no help")
                    continue
                if isinstance(action, FLAGS) or action.default is None:
                    continue
                if "%(default)s" not in (action.help or ""):
                    missing.append(f"{label}: default {action.default!r} not shown")
        assert missing == []
        for name, sub in subparsers(parser).items():
            assert sub.format_help(), name  # every %(...)s expands

    def test_importing_the_cli_leaves_the_mock_alone(self) -> None:
        """Building the parser imports neither the mock Graph nor aiohttp: `bulkprov status`
        and `--help` start fast."""
        code = (
            "import sys, bulkprov.cli as c; c.build_parser(); "
            "print(sorted(m for m in sys.modules if m.startswith(('bulkprov.mockgraph', "
            "'aiohttp'))))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == "[]"


def render(fn: object, *args: object, width: int = 80) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=False, highlight=False)
    fn(console, *args)  # type: ignore[operator]
    return out.getvalue()


class Stats:
    requests, throttled, retries = 812, 0, 3


class TestRunSummary:
    def test_skipped_instances_are_not_counted_as_done_this_run(self) -> None:
        """A resumed run's summary shows what this run did apart from the instances it
        skipped because the ledger records them finished."""
        result = RunResult(total=50, skipped=40)
        result.statuses.update({"done": 45, "quarantined": 3, "failed": 2})
        result.skipped_statuses.update({"done": 38, "quarantined": 2})
        text = render(_print_run_summary, result, Stats(), Path("runs/l.jsonl"), width=100)
        assert "this run" in text and "already finished, skipped" in text
        for status, now, before in (("done", 7, 38), ("quarantined", 1, 2), ("failed", 2, 0)):
            assert re.search(rf"│ {status} +│ +{now} │ +{before} │", text), text

    def test_ledger_path_is_never_wrapped(self) -> None:
        """The ledger's path is printed whole on a line of its own, however narrow the
        console, so that it can be copied into the next command."""
        path = Path("runs/" + "a-very-long-ledger-name-" * 6 + ".jsonl")
        result = RunResult(total=1)
        result.statuses["done"] = 1
        text = render(_print_run_summary, result, Stats(), path, width=40)
        assert f"ledger {path}\n" in text

    def test_summary_json_keeps_the_old_keys(self, tmp_path: Path) -> None:
        """--summary-json keeps "statuses" (skipped instances included) and adds this run's
        counts and the skipped ones' apart."""
        from .enginekit import aws_manifest

        manifest = aws_manifest(tmp_path / "m.csv", 2)
        summary = tmp_path / "s.json"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "bulkprov.cli",
                "run",
                str(manifest),
                "--mock",
                "--no-monitor",
                "--ledger",
                str(tmp_path / "l.jsonl"),
                "--summary-json",
                str(summary),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        body = orjson.loads(summary.read_bytes())
        assert body["statuses"] == {"done": 2} and body["skipped"] == 0
        assert body["thisRun"] == {"done": 2} and body["skippedStatuses"] == {}


def write_ledger(path: Path, keys: list[str], status: str = "failed") -> Path:
    lines = [
        {
            "type": "header",
            "version": 1,
            "manifest": "m.csv",
            "graph": "https://g/v1.0",
            "tenant": "t",
            "salt": "00",
        }
    ]
    lines += [
        {
            "type": "instance",
            "key": k,
            "status": status,
            "error": {"step": "validate", "code": "Bad", "message": f"no {k}"},
        }
        for k in keys
    ]
    path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    return path


class TestTables:
    def test_status_says_how_many_rows_it_left_out(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`status` lists 200 instances and says how many more there are, never cutting the
        table silently."""
        keys = [f"k{i:04d}" for i in range(STATUS_ROWS + 7)]
        ledger = write_ledger(tmp_path / "l.jsonl", keys)
        assert cli.main(["status", str(ledger)]) == 0
        out = capsys.readouterr().out
        assert "... 7 more (--json lists all)" in out
        assert f"k{STATUS_ROWS - 1:04d}" in out and f"k{STATUS_ROWS:04d}" not in out

    def test_control_and_bidi_characters_are_shown_escaped(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A name with a right-to-left override, an ANSI escape or rich markup is shown
        escaped in the tables, not acted on."""
        keys = ["evil\u202etxt.exe", "red\x1b[31malert", "[bold]loud[/bold]", "zero\u200bwidth"]
        ledger = write_ledger(tmp_path / "l.jsonl", keys)
        assert cli.main(["status", str(ledger)]) == 0
        out = capsys.readouterr().out
        assert "\u202e" not in out and "\x1b" not in out and "\u200b" not in out
        for shown in (
            "evil\\u202etxt.exe",
            "red\\x1b[31malert",
            "[bold]loud[/bold]",
            "zero\\u200bwidth",
        ):
            assert shown in out, out

    def test_printable(self) -> None:
        """Controls, bidi controls, format characters and line separators are escaped;
        other text, accents and scripts included, is left as it is."""
        assert printable("Zoë 日本 Ωmega") == "Zoë 日本 Ωmega"
        assert printable("a\tb\nc\u2028d\u2066e\U000e0041") == (
            "a\\x09b\\x0ac\\u2028d\\u2066e\\U000e0041"
        )
        assert printable("a\nb", keep_newlines=True) == "a\nb"
        assert printable(None) == ""
        assert cell("[red]x").plain == "[red]x"

    def test_monitor_without_jobs_says_so(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`monitor` on a ledger without jobs says the ledger records none, with no dangling
        "0 job(s):"."""
        args = argparse.Namespace(ledger=Path("runs/l.jsonl"), all=False)
        monitor_cmd._print_monitor(args, [], None)  # type: ignore[arg-type]
        out = capsys.readouterr().out
        assert "records no job" in out and "0 job(s)" not in out
