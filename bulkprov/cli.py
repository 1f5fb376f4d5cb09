"""The ``bulkprov`` command line.

Each command is a :class:`Command`: its name, its line of help, and the function that builds its
parser. A command's parser is built only when the command is invoked (or its help shown), and
only then are the modules its options and its work come from imported: ``bulkprov --help``
imports none of them. The mock's options come from :mod:`bulkprov.mockgraph.cli`; the mock
itself is loaded only by ``mock-graph``, ``--mock`` and ``--mock-info``.

To add a command: its module in :mod:`bulkprov.commands` with the function that runs it and
returns an :class:`~bulkprov.exitcodes.ExitCode`; a function here that builds its parser (its
options, and ``p.set_defaults(func=...)`` with that function, imported inside the builder), and
a :class:`Command` in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from .exitcodes import ExitCode

PROGRESS_EVERY = 5.0  # real seconds between plain progress lines (stderr not a terminal)

Build = Callable[[argparse.ArgumentParser], None]


def package_version() -> str:
    """bulkprov's version, from the installed package's metadata."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bulkprov")
    except PackageNotFoundError:
        return "unknown (not installed)"


class Parser(argparse.ArgumentParser):
    """An argument parser whose unknown arguments are reported, with its usage, by the
    subcommand they were given to (argparse hands them up to the top parser)."""

    commands: Mapping[str, argparse.ArgumentParser] = {}

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self._reporter(parsed, list(sys.argv[1:] if args is None else args), extras).error(
                f"unrecognized arguments: {' '.join(extras)}"
            )
        return parsed

    def _reporter(
        self, parsed: argparse.Namespace, argv: list[str], extras: list[str]
    ) -> argparse.ArgumentParser:
        commands = self.commands
        command = getattr(parsed, "command", None)
        if not isinstance(command, str) or command not in commands or command not in argv:
            return self
        at = argv.index(command)
        # an unknown option before the command name is the top parser's
        if any(argv.index(x) < at for x in extras if x in argv):
            return self
        return commands[command]


class _Version(argparse._VersionAction):
    """``--version``: the package's metadata is read only when it is asked for."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        self.version = f"%(prog)s {package_version()}"
        super().__call__(parser, namespace, values, option_string)


class CommandParser(argparse.ArgumentParser):
    """A command's parser, built by its :data:`Build` function when it is first used: parsed,
    or its usage or help shown."""

    def __init__(self, *args: Any, build: Build | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._build = build

    def complete(self) -> CommandParser:
        """Build the parser now (once)."""
        build, self._build = self._build, None
        if build is not None:
            build(self)
        return self

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self.complete()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self.complete()
        return super().format_usage()

    def format_help(self) -> str:
        self.complete()
        return super().format_help()


def _progress_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--progress-every",
        type=_non_negative_float,
        default=PROGRESS_EVERY,
        metavar="SECONDS",
        help="when stderr is not a terminal (a CI log, a pipe), print a progress line this "
        "often, in real seconds, and one at the end; 0: none (default %(default)s; on a "
        "terminal the display is live)",
    )


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _connection_options(p: argparse.ArgumentParser) -> None:
    """The connection flags, and the options of the embedded mock that ``--mock`` starts."""
    from .cliconnect import add_connection_options
    from .mockgraph.cli import add_mock_options

    add_connection_options(p)
    add_mock_options(p)


# ---------------------------------------------------------------------- the commands
def _mock_graph(p: argparse.ArgumentParser) -> None:
    from .mockgraph.cli import configure_parser

    configure_parser(p)


def _run(p: argparse.ArgumentParser) -> None:
    from .commands.run import cmd_run

    p.description = (
        "Validate the manifest, then take every instance through the provisioning "
        "steps concurrently under Graph's quotas, recording each step in the "
        "ledger. Run it again with the same ledger to resume: finished instances "
        "are skipped and no application is created twice. Exit codes: 0 all done, "
        "1 some instance failed, 2 bad input, 3 some job quarantined, 130 "
        "interrupted."
    )
    p.add_argument("manifest", type=Path, help="CSV, JSON or JSONL manifest")
    _tenant_option(p, manifest=True)
    p.add_argument(
        "--ledger",
        type=Path,
        default=None,
        help="JSONL ledger to write and resume from (required unless --mock)",
    )
    _run_options(p)
    _progress_option(p)
    _connection_options(p)
    p.set_defaults(func=cmd_run)


def _plan(p: argparse.ArgumentParser) -> None:
    from .commands.plan import cmd_plan

    p.description = (
        "Validate the whole manifest (every problem at once, with file, line and "
        "field), resolve its templates (and agent groups), and show per instance whether a "
        "run would create, adopt or skip it, finds a conflict, or would refuse it (an "
        "agentGroup under an app-only credential). Sends no write to Graph. Exit code 1 for "
        "a conflict or a refusal."
    )
    p.add_argument("manifest", type=Path, help="CSV, JSON or JSONL manifest")
    _tenant_option(p, manifest=True)
    p.add_argument(
        "--ledger",
        type=Path,
        default=None,
        help="the ledger a run would resume from: its finished instances show as done",
    )
    p.add_argument(
        "--offline", action="store_true", help="only validate the manifest; no Graph call"
    )
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument(
        "--allow-inline-secrets",
        action="store_true",
        help="accept secret values written in the manifest itself",
    )
    _secrets_dir_option(p)
    p.add_argument(
        "--on-existing",
        choices=("adopt", "fail"),
        default="adopt",
        help="what a run would do with an application of that name and template that "
        "already exists: adopt it or fail the instance (default %(default)s)",
    )
    _connection_options(p)
    p.set_defaults(func=cmd_plan)


def _export(p: argparse.ArgumentParser) -> None:
    from .commands.export import cmd_export

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = (
        "Read the source tenant (no writes) and write, for every service principal "
        "that has a synchronization job:\n\n"
        "  OUT/manifest.json       one instance per app (its first job): gallery template,\n"
        "                          display name,"
        " synchronization template, schedule, job settings,\n"
        "                          whether it runs,"
        " and credentials as env:VAR references\n"
        "  OUT/schemas/<key>.json  the job's synchronization schema (mappings, scoping\n"
        "                          filters, directories), PUT onto the new job by `run`\n"
        "  OUT/secrets.env         the variables the credentials refer to, to fill in:\n"
        "                          Graph never returns secret values\n\n"
        "Then, against the target tenant: `bulkprov plan OUT/manifest.json` (refuses until "
        "every secret variable is set) and `bulkprov run OUT/manifest.json --ledger ...`."
    )
    p.add_argument("--out", type=Path, required=True, help="directory to write (created)")
    p.add_argument(
        "--template", default=None, help="only apps of this gallery template (display name or id)"
    )
    p.add_argument(
        "--name",
        default=None,
        help="only apps whose display name contains this text (case-insensitive), or matches "
        "it as a glob when it has * ? or [",
    )
    p.add_argument(
        "--ids-file",
        type=Path,
        default=None,
        help="only the service principals listed in this file (object ids or appIds, one a line)",
    )
    p.add_argument(
        "--force", action="store_true", help="write into an --out directory that has a manifest"
    )
    _progress_option(p)
    _connection_options(p)
    p.set_defaults(func=cmd_export)


def _tenant_option(p: argparse.ArgumentParser, *, manifest: bool = False) -> None:
    what = "a manifest whose rows name profiles" if manifest else "a ledger of many tenants"
    p.add_argument(
        "--tenant",
        dest="only_tenants",
        action="append",
        metavar="PROFILE",
        default=None,
        help=f"{what}: only the instances of this profile's tenant (repeatable; default: "
        "every tenant)",
    )


def _status(p: argparse.ArgumentParser) -> None:
    from .commands.status import cmd_status

    p.add_argument("ledger", type=Path, help="the JSONL ledger a run wrote")
    _tenant_option(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--all", action="store_true", help="list every instance")
    p.set_defaults(func=cmd_status)


def _cleanup(p: argparse.ArgumentParser) -> None:
    from .commands.cleanup import cmd_cleanup

    p.description = (
        "Delete the synchronization jobs, service principals and applications "
        "that the run(s) recorded in LEDGER created, in reverse order (job, service "
        "principal, application). Applications the run adopted are kept (only the jobs the "
        "run created on them are deleted) unless --include-adopted. Lists what it will "
        "delete (counts and the first names) and asks for confirmation unless --yes. Every "
        "deletion is recorded in the same ledger: a second cleanup does nothing, and one "
        "that was interrupted finishes the rest; a 404 counts as already deleted. Deleted "
        "applications stay restorable in /directory/deletedItems for 30 days unless "
        "--purge. Connects like `run`; the ledger's tenant and Graph must match. Exit "
        "codes: 0 done (or nothing to do, or --dry-run), 1 some deletion failed or not "
        "confirmed, 2 bad input, 130 interrupted."
    )
    p.add_argument("ledger", type=Path, help="the JSONL ledger a run wrote")
    _tenant_option(p)
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.add_argument(
        "--dry-run", action="store_true", help="list every object it would delete; delete nothing"
    )
    p.add_argument(
        "--include-adopted",
        action="store_true",
        help="also delete the applications (and service principals) the run adopted",
    )
    p.add_argument(
        "--purge",
        action="store_true",
        help="also delete them permanently from /directory/deletedItems (not restorable); "
        "a later cleanup with --purge purges what an earlier one deleted",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=16,
        help="instances cleaned up at once (default %(default)s)",
    )
    p.add_argument("--fsync", action="store_true", help="fsync the ledger after every record")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    _progress_option(p)
    _connection_options(p)
    p.set_defaults(func=cmd_cleanup)


def _monitor(p: argparse.ArgumentParser) -> None:
    from .commands.monitor import cmd_monitor

    p.description = (
        "Read every synchronization job recorded in LEDGER: status code, "
        "quarantine reason and error code, the errors of the last and last successful "
        "executions, and the latest provisioning-log failures per service principal (read "
        "for all of them at once: the reports quota is 5 requests per 10 s). --restart "
        "restarts the quarantined jobs (after their credentials were fixed) and reads them "
        "again. Connects like `run`; the ledger's tenant and Graph must match. Exit codes: "
        "0 no job quarantined, 1 some job could not be read, 2 bad input, 3 some job "
        "quarantined."
    )
    p.add_argument("ledger", type=Path, help="the JSONL ledger a run wrote")
    _tenant_option(p)
    p.add_argument(
        "--json",
        action="store_true",
        help="print JSON Lines on stdout: one object per instance with a job",
    )
    p.add_argument(
        "--all", action="store_true", help="list every job, not only those needing attention"
    )
    p.add_argument(
        "--restart",
        action="store_true",
        help="restart quarantined jobs (POST .../restart); recorded in the ledger",
    )
    p.add_argument(
        "--reset-scope",
        type=_reset_scope,
        default="Watermark, Escrows, QuarantineState",
        help="criteria.resetScope of a restart (default '%(default)s')",
    )
    p.add_argument("--no-logs", action="store_true", help="do not read the provisioning logs")
    p.add_argument(
        "--since",
        type=_iso_datetime,
        default=None,
        metavar="DATETIME",
        help="provisioning failures at or after this UTC time, e.g. 2025-01-31T00:00:00Z "
        "(default: when the ledger was created)",
    )
    p.add_argument(
        "--failures",
        type=int,
        default=3,
        help="latest provisioning failures shown per instance (default %(default)s)",
    )
    p.add_argument(
        "--concurrency", type=int, default=32, help="jobs read at once (default %(default)s)"
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    _connection_options(p)
    p.set_defaults(func=cmd_monitor)


def _drift(p: argparse.ArgumentParser) -> None:
    from .commands.drift import cmd_drift

    p.description = (
        "Read the live state of every instance LEDGER set up and compare it with MANIFEST: "
        "application and service principal exist (and their display names), job state and "
        "quarantine, job settings, the job's schema against the manifest's schema file (a "
        "path-level diff), and which secret keys are saved (Graph never returns secret "
        "values: a secret changed in the portal is invisible). Instances the ledger has and "
        "the manifest no longer lists are drift too. Reads only, paced like a run; what "
        "drifted is recorded in the ledger (unless --no-record) so that the next `run` puts "
        "it back. Connects like `monitor`. Exit codes: 0 nothing drifted, 1 some instance "
        "could not be read, 2 bad input, 4 something drifted."
    )
    p.add_argument("ledger", type=Path, help="the JSONL ledger a run wrote")
    _tenant_option(p)
    p.add_argument("manifest", type=Path, help="the manifest: the desired state")
    p.add_argument("--json", action="store_true", help="print the drift as JSON")
    p.add_argument("--no-record", action="store_true", help="do not record the drift in the ledger")
    p.add_argument(
        "--allow-inline-secrets",
        action="store_true",
        help="accept secret values written in the manifest itself",
    )
    _secrets_dir_option(p)
    p.add_argument(
        "--concurrency", type=int, default=32, help="instances read at once (default %(default)s)"
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    _connection_options(p)
    p.set_defaults(func=cmd_drift)


def _report(p: argparse.ArgumentParser) -> None:
    from .report import cmd_report, configure_parser  # its arguments only: no model, no HTML

    configure_parser(p)
    _tenant_option(p)
    _connection_options(p)
    p.set_defaults(func=cmd_report)


def _templates(p: argparse.ArgumentParser) -> None:
    from .commands.templates import cmd_templates

    p.description = (
        "List the application templates of the Microsoft Entra gallery whose "
        "display name contains SEARCH (Graph's $filter=contains(displayName, ...); case "
        "does not matter), or the one whose id SEARCH is: id, display name, publisher and "
        "whether it supports provisioning (supportedProvisioningTypes holds sync). With "
        "--keys, or when one template matches, also the credential keys its "
        "synchronization template asks for, which are the keys a manifest gives: Graph "
        "tells them only through an existing instance's synchronization templates, so they "
        "are read from the tenant's first service principal of that template, and shown "
        "as unknown when there is none. Reads only. Connects like `plan`. Exit codes: 0 "
        "some template matches, 1 none, 2 bad input."
    )
    p.add_argument(
        "search",
        nargs="?",
        default=None,
        metavar="SEARCH",
        help="part of the display name, or a template id (default: every template)",
    )
    p.add_argument(
        "--keys",
        action="store_true",
        help="show each template's credential keys (one request or two per template; "
        "shown anyway when one template matches)",
    )
    p.add_argument(
        "--provisioning",
        action="store_true",
        help="only the templates that support provisioning",
    )
    p.add_argument("--json", action="store_true", help="print the templates as JSON")
    _connection_options(p)
    p.set_defaults(func=cmd_templates)


def _reset_scope(text: str) -> str:
    from .monitor import parse_reset_scope

    try:
        return parse_reset_scope(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _iso_datetime(text: str) -> str:
    import re

    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?Z", text):
        raise argparse.ArgumentTypeError(
            f"expected a UTC date and time such as 2025-01-31T00:00:00Z, got {text!r}"
        )
    return text


def _run_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run")
    g.add_argument(
        "--concurrency",
        type=int,
        default=1000,
        help="instances in flight at once (default %(default)s): enough to spend Graph's burst of "
        "3,000 writes at the start while new objects replicate; the quotas, not this, pace "
        "the requests",
    )
    g.add_argument(
        "--on-existing",
        choices=("adopt", "fail"),
        default="adopt",
        help="an application of that name and template already exists and the "
        "ledger does not know it: adopt it or fail the instance (default %(default)s)",
    )
    g.add_argument(
        "--prune",
        action="store_true",
        help="delete the instances the ledger has and the manifest no longer lists, as "
        "`cleanup` does (asks first unless --yes)",
    )
    g.add_argument("--yes", "-y", action="store_true", help="--prune: do not ask")
    g.add_argument(
        "--no-monitor",
        action="store_true",
        help="stop after starting each job; do not wait for its first cycle",
    )
    g.add_argument("--no-logs", action="store_true", help="do not read provisioning logs")
    g.add_argument(
        "--monitor-deadline",
        type=float,
        default=900.0,
        help="Graph seconds a started job may take to reach steady state (default %(default)s)",
    )
    g.add_argument(
        "--allow-inline-secrets",
        action="store_true",
        help="accept secret values written in the manifest itself",
    )
    _secrets_dir_option(g)
    g.add_argument(
        "--write-quota",
        default=None,
        metavar="N/SECONDS",
        help="client-side write quota (default Graph's 3000/150)",
    )
    g.add_argument(
        "--ru-quota",
        default=None,
        metavar="N/SECONDS",
        help="client-side resource-unit quota (default Graph's smallest, 3500/10)",
    )
    g.add_argument(
        "--fsync",
        action="store_true",
        help="fsync the ledger after every record (survives power loss too)",
    )
    g.add_argument("--log-file", type=Path, default=None, help="JSON log file (mode 600)")
    g.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more console logging (-v info, -vv debug)",
    )
    g.add_argument(
        "--summary-json",
        type=Path,
        default=None,
        help="write the final summary as JSON to this file",
    )


def _secrets_dir_option(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument(
        "--secrets-dir",
        action="append",
        type=Path,
        default=None,
        metavar="DIR",
        help="a directory the manifest's file: references may point into besides the "
        "manifest's own (repeatable; a profile's secrets_dirs adds more; default: none)",
    )


class Command(NamedTuple):  # (not a dataclass: `bulkprov --help` would import dataclasses)
    name: str
    help: str  # its line in `bulkprov --help`
    build: Build  # adds its options and sets ``func``, the function that runs it


COMMANDS = (
    Command("mock-graph", "serve the embedded mock Microsoft Graph", _mock_graph),
    Command("run", "onboard every instance of a manifest", _run),
    Command("plan", "validate a manifest and show what a run would do", _plan),
    Command(
        "export",
        "write a tenant's provisioning set-up as a manifest another tenant can run",
        _export,
    ),
    Command("status", "summarise a ledger, per step and per instance", _status),
    Command("cleanup", "delete what a run created", _cleanup),
    Command("monitor", "show the state of every job a run set up", _monitor),
    Command("report", "write an HTML report of a ledger", _report),
    Command(
        "templates",
        "list gallery application templates and the credential keys they need",
        _templates,
    ),
    Command("drift", "compare the live state of a ledger's instances with the manifest", _drift),
)


def build_parser(*, complete: bool = False) -> argparse.ArgumentParser:
    """The parser of ``bulkprov``; each command's own parser is built when it is used, or
    here already with ``complete``."""
    parser = Parser(
        prog="bulkprov",
        description="Configure Microsoft Entra app provisioning for many gallery apps at once "
        "through Microsoft Graph.",
    )
    parser.add_argument("--version", action=_Version, help="print bulkprov's version and exit")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=CommandParser
    )
    parser.commands = sub.choices
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, build=command.build)
        if complete:
            p.complete()
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .tls import small_tls_read_buffers  # after parsing: `--help` needs no asyncio

    small_tls_read_buffers()  # process-wide, once: every TLS connection reads one record
    try:
        code: int = args.func(args)
    except BaseException as exc:  # every way out gets its message and exit code
        return report_error(exc, verbose=int(getattr(args, "verbose", 0) or 0))
    finally:
        from .log import close as close_logs

        close_logs()  # the command's log file, if it wrote one, is closed as it ends
    return int(code)


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, in order."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def report_error(exc: BaseException, *, verbose: int = 0) -> ExitCode:
    """Say what stopped a command in one line per cause, and give its exit code: 2 for bulkprov's
    own errors (bad input, settings or ledger; a Graph or authority that cannot be used), 130
    for an interruption, 1 for anything unexpected (a bug: its type and where it happened, and
    with -vv its traceback, never its locals)."""
    import traceback

    from .errors import BulkProvError

    if isinstance(exc, SystemExit):
        raise exc
    leaves = _leaves(exc)
    if any(isinstance(e, KeyboardInterrupt) for e in leaves):
        print("bulkprov: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    seen: set[str] = set()
    code = ExitCode.USAGE
    for e in leaves:
        if isinstance(e, BulkProvError):
            text = f"bulkprov: error: {e}"
        else:
            code = ExitCode.INTERNAL
            frames = traceback.extract_tb(e.__traceback__)
            ours = [f for f in frames if "bulkprov" in f.filename] or frames
            where = f" at {Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else ""
            text = (
                f"bulkprov: internal error: {type(e).__name__}{where} (a bug in bulkprov; "
                "-vv shows the traceback)"
            )
        if text not in seen:
            seen.add(text)
            print(text, file=sys.stderr)
        if verbose >= 2:
            traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
