"""The ``bulkprov`` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .tls import small_tls_read_buffers

if TYPE_CHECKING:  # the mock is imported where it is used: `bulkprov status` needs no aiohttp
    from .mockgraph.settings import MockSettings

PROGRESS_EVERY = 5.0  # real seconds between plain progress lines (stderr not a terminal)


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


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def add_mock_options(p: argparse.ArgumentParser) -> None:
    """The options that shape a mock Graph (shared by ``mock-graph`` and the ``--mock`` of
    ``run``, ``plan``, ``export``, ``monitor`` and ``cleanup``)."""
    g = p.add_argument_group("mock Graph behaviour (defaults: Graph's published figures)")
    g.add_argument(
        "--time-scale",
        type=_positive_float,
        default=None,
        help="real seconds per Graph second: 0.01 runs latency, quotas, Retry-After, "
        "replication and job cycles 100x faster (default 1.0 for mock-graph, 0.02 for "
        "--mock; a client of a running mock-graph takes the mock's own)",
    )
    g.add_argument(
        "--seed", type=int, default=1406, help="seed of the injected faults (default %(default)s)"
    )
    g.add_argument(
        "--tenants", type=int, default=1, help="number of tenants served (default %(default)s)"
    )
    g.add_argument(
        "--tenant-size",
        choices=("small", "medium", "large"),
        default="small",
        help="sizes the resource-unit quota: 3,500 / 5,000 / 8,000 RU per 10 s "
        "(default %(default)s)",
    )
    g.add_argument("--no-throttle", action="store_true", help="switch throttling off")
    g.add_argument("--no-latency", action="store_true", help="answer without service time")
    g.add_argument(
        "--no-replication",
        action="store_true",
        help="new objects read back at once (no replication delay)",
    )
    g.add_argument(
        "--replication-max",
        type=float,
        default=None,
        help="longest replication delay of a new object, Graph seconds (default 12)",
    )
    g.add_argument(
        "--fault-rate",
        type=_rate,
        default=0.0,
        help="probability that any request answers 500/502/503/504 (default %(default)s)",
    )
    g.add_argument(
        "--drop-rate",
        type=_rate,
        default=0.0,
        help="probability that any request's connection is dropped (default %(default)s)",
    )
    g.add_argument(
        "--instantiate-404-rate",
        type=_rate,
        default=0.0,
        help="probability that instantiate creates the objects but answers 404 "
        "(default %(default)s)",
    )
    g.add_argument(
        "--instantiate-timeout-rate",
        type=_rate,
        default=0.0,
        help="probability that instantiate creates the objects but answers only after the "
        "client's timeout (default %(default)s)",
    )
    g.add_argument(
        "--token-lifetime",
        type=_positive_float,
        default=3599.0,
        help="access token lifetime in real seconds (default %(default)s)",
    )


def mock_settings_from_args(
    args: argparse.Namespace, *, default_time_scale: float = 1.0
) -> MockSettings:
    from .mockgraph.settings import (
        FaultSettings,
        LatencySettings,
        MockSettings,
        ReplicationSettings,
        ThrottleSettings,
    )

    replication = ReplicationSettings(enabled=not args.no_replication)
    if args.replication_max is not None:
        replication = ReplicationSettings(
            enabled=not args.no_replication,
            min_delay=min(replication.min_delay, args.replication_max),
            max_delay=args.replication_max,
        )
    return MockSettings(
        time_scale=args.time_scale if args.time_scale is not None else default_time_scale,
        tenants=args.tenants,
        throttle=ThrottleSettings(enabled=not args.no_throttle, tenant_size=args.tenant_size),
        latency=LatencySettings(enabled=not args.no_latency),
        replication=replication,
        faults=FaultSettings(
            seed=args.seed,
            error_rate={"*": args.fault_rate} if args.fault_rate else {},
            drop_rate={"*": args.drop_rate} if args.drop_rate else {},
            instantiate_404_rate=args.instantiate_404_rate,
            instantiate_timeout_rate=args.instantiate_timeout_rate,
        ),
        token_lifetime=args.token_lifetime,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="bulkprov",
        description="Configure Microsoft Entra app provisioning for many gallery apps at once "
        "through Microsoft Graph.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {package_version()}",
        help="print bulkprov's version and exit",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.commands = sub.choices

    mock = sub.add_parser(
        "mock-graph",
        help="serve the embedded mock Microsoft Graph",
        description="Serve a mock Microsoft Graph (HTTPS, with its own CA) with Graph's quotas, "
        "429s, latency, replication delays and faults, and an OAuth2 token endpoint "
        "that MSAL accepts. Prints what a client needs to connect.",
    )
    mock.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    mock.add_argument(
        "--port", type=int, default=8443, help="HTTPS port, 0: any free port (default %(default)s)"
    )
    mock.add_argument(
        "--http-port", type=int, default=None, help="also serve plain HTTP on this port (for curl)"
    )
    mock.add_argument(
        "--info-file",
        type=Path,
        default=None,
        help="write the connection details (JSON, mode 600) to this file",
    )
    mock.add_argument(
        "--profiles-file",
        type=Path,
        default=None,
        help="write a profiles file (TOML, mode 600) with two profiles per tenant: tenantN "
        "(app-only, client secret in FILE.secret) and tenantN-device (device code, delegated)",
    )
    mock.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where the TLS CA and certificate are written (default: a temp dir)",
    )
    add_mock_options(mock)
    mock.set_defaults(func=cmd_mock_graph)

    from .connect import add_connection_options

    run = sub.add_parser(
        "run",
        help="onboard every instance of a manifest",
        description="Validate the manifest, then take every instance through the provisioning "
        "steps concurrently under Graph's quotas, recording each step in the "
        "ledger. Run it again with the same ledger to resume: finished instances "
        "are skipped and no application is created twice. Exit codes: 0 all done, "
        "1 some instance failed, 2 bad input, 3 some job quarantined, 130 "
        "interrupted.",
    )
    run.add_argument("manifest", type=Path, help="CSV, JSON or JSONL manifest")
    run.add_argument(
        "--ledger",
        type=Path,
        default=None,
        help="JSONL ledger to write and resume from (required unless --mock)",
    )
    _run_options(run)
    _progress_option(run)
    add_connection_options(run)
    add_mock_options(run)
    run.set_defaults(func=cmd_run)

    plan = sub.add_parser(
        "plan",
        help="validate a manifest and show what a run would do",
        description="Validate the whole manifest (every problem at once, with file, line and "
        "field), resolve its templates (and agent groups), and show per instance whether a "
        "run would create, adopt or skip it, finds a conflict, or would refuse it (an "
        "agentGroup under an app-only credential). Sends no write to Graph. Exit code 1 for "
        "a conflict or a refusal.",
    )
    plan.add_argument("manifest", type=Path, help="CSV, JSON or JSONL manifest")
    plan.add_argument(
        "--ledger",
        type=Path,
        default=None,
        help="the ledger a run would resume from: its finished instances show as done",
    )
    plan.add_argument(
        "--offline", action="store_true", help="only validate the manifest; no Graph call"
    )
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.add_argument(
        "--allow-inline-secrets",
        action="store_true",
        help="accept secret values written in the manifest itself",
    )
    _secrets_dir_option(plan)
    plan.add_argument(
        "--on-existing",
        choices=("adopt", "fail"),
        default="adopt",
        help="what a run would do with an application of that name and template that "
        "already exists: adopt it or fail the instance (default %(default)s)",
    )
    add_connection_options(plan)
    add_mock_options(plan)
    plan.set_defaults(func=cmd_plan)

    export = sub.add_parser(
        "export",
        help="write a tenant's provisioning set-up as a manifest another tenant can run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Read the source tenant (no writes) and write, for every service principal "
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
        "every secret variable is set) and `bulkprov run OUT/manifest.json --ledger ...`.",
    )
    export.add_argument("--out", type=Path, required=True, help="directory to write (created)")
    export.add_argument(
        "--template", default=None, help="only apps of this gallery template (display name or id)"
    )
    export.add_argument(
        "--name",
        default=None,
        help="only apps whose display name contains this text (case-insensitive), or matches "
        "it as a glob when it has * ? or [",
    )
    export.add_argument(
        "--ids-file",
        type=Path,
        default=None,
        help="only the service principals listed in this file (object ids or appIds, one a line)",
    )
    export.add_argument(
        "--force", action="store_true", help="write into an --out directory that has a manifest"
    )
    _progress_option(export)
    add_connection_options(export)
    add_mock_options(export)
    export.set_defaults(func=cmd_export)

    status = sub.add_parser("status", help="summarise a ledger, per step and per instance")
    status.add_argument("ledger", type=Path, help="the JSONL ledger a run wrote")
    status.add_argument("--json", action="store_true", help="print the summary as JSON")
    status.add_argument("--all", action="store_true", help="list every instance")
    status.set_defaults(func=cmd_status)

    cleanup = sub.add_parser(
        "cleanup",
        help="delete what a run created",
        description="Delete the synchronization jobs, service principals and applications "
        "that the run(s) recorded in LEDGER created, in reverse order (job, service "
        "principal, application). Applications the run adopted are kept (only the jobs the "
        "run created on them are deleted) unless --include-adopted. Lists what it will "
        "delete (counts and the first names) and asks for confirmation unless --yes. Every "
        "deletion is recorded in the same ledger: a second cleanup does nothing, and one "
        "that was interrupted finishes the rest; a 404 counts as already deleted. Deleted "
        "applications stay restorable in /directory/deletedItems for 30 days unless "
        "--purge. Connects like `run`; the ledger's tenant and Graph must match. Exit "
        "codes: 0 done (or nothing to do, or --dry-run), 1 some deletion failed or not "
        "confirmed, 2 bad input, 130 interrupted.",
    )
    cleanup.add_argument("ledger", type=Path, help="the JSONL ledger a run wrote")
    cleanup.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    cleanup.add_argument(
        "--dry-run", action="store_true", help="list every object it would delete; delete nothing"
    )
    cleanup.add_argument(
        "--include-adopted",
        action="store_true",
        help="also delete the applications (and service principals) the run adopted",
    )
    cleanup.add_argument(
        "--purge",
        action="store_true",
        help="also delete them permanently from /directory/deletedItems (not restorable); "
        "a later cleanup with --purge purges what an earlier one deleted",
    )
    cleanup.add_argument(
        "--concurrency",
        type=int,
        default=16,
        help="instances cleaned up at once (default %(default)s)",
    )
    cleanup.add_argument(
        "--fsync", action="store_true", help="fsync the ledger after every record"
    )
    cleanup.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    _progress_option(cleanup)
    add_connection_options(cleanup)
    add_mock_options(cleanup)
    cleanup.set_defaults(func=cmd_cleanup)

    monitor = sub.add_parser(
        "monitor",
        help="show the state of every job a run set up",
        description="Read every synchronization job recorded in LEDGER: status code, "
        "quarantine reason and error code, the errors of the last and last successful "
        "executions, and the latest provisioning-log failures per service principal (read "
        "for all of them at once: the reports quota is 5 requests per 10 s). --restart "
        "restarts the quarantined jobs (after their credentials were fixed) and reads them "
        "again. Connects like `run`; the ledger's tenant and Graph must match. Exit codes: "
        "0 no job quarantined, 1 some job could not be read, 2 bad input, 3 some job "
        "quarantined.",
    )
    monitor.add_argument("ledger", type=Path, help="the JSONL ledger a run wrote")
    monitor.add_argument(
        "--json",
        action="store_true",
        help="print JSON Lines on stdout: one object per instance with a job",
    )
    monitor.add_argument("--all", action="store_true", help="list every job, not only those "
                         "needing attention")
    monitor.add_argument(
        "--restart",
        action="store_true",
        help="restart quarantined jobs (POST .../restart); recorded in the ledger",
    )
    monitor.add_argument(
        "--reset-scope",
        type=_reset_scope,
        default="Watermark, Escrows, QuarantineState",
        help="criteria.resetScope of a restart (default '%(default)s')",
    )
    monitor.add_argument(
        "--no-logs", action="store_true", help="do not read the provisioning logs"
    )
    monitor.add_argument(
        "--since",
        type=_iso_datetime,
        default=None,
        metavar="DATETIME",
        help="provisioning failures at or after this UTC time, e.g. 2025-01-31T00:00:00Z "
        "(default: when the ledger was created)",
    )
    monitor.add_argument(
        "--failures",
        type=int,
        default=3,
        help="latest provisioning failures shown per instance (default %(default)s)",
    )
    monitor.add_argument(
        "--concurrency", type=int, default=32, help="jobs read at once (default %(default)s)"
    )
    monitor.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    add_connection_options(monitor)
    add_mock_options(monitor)
    monitor.set_defaults(func=cmd_monitor)

    templates = sub.add_parser(
        "templates",
        help="list gallery application templates and the credential keys they need",
        description="List the application templates of the Microsoft Entra gallery whose "
        "display name contains SEARCH (Graph's $filter=contains(displayName, ...); case "
        "does not matter), or the one whose id SEARCH is: id, display name, publisher and "
        "whether it supports provisioning (supportedProvisioningTypes holds sync). With "
        "--keys, or when one template matches, also the credential keys its "
        "synchronization template asks for, which are the keys a manifest gives: Graph "
        "tells them only through an existing instance's synchronization templates, so they "
        "are read from the tenant's first service principal of that template, and shown "
        "as unknown when there is none. Reads only. Connects like `plan`. Exit codes: 0 "
        "some template matches, 1 none, 2 bad input.",
    )
    templates.add_argument(
        "search",
        nargs="?",
        default=None,
        metavar="SEARCH",
        help="part of the display name, or a template id (default: every template)",
    )
    templates.add_argument(
        "--keys",
        action="store_true",
        help="show each template's credential keys (one request or two per template; "
        "shown anyway when one template matches)",
    )
    templates.add_argument(
        "--provisioning",
        action="store_true",
        help="only the templates that support provisioning",
    )
    templates.add_argument("--json", action="store_true", help="print the templates as JSON")
    add_connection_options(templates)
    add_mock_options(templates)
    templates.set_defaults(func=cmd_templates)
    return parser


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
        "--no-monitor",
        action="store_true",
        help="stop after starting each job; do not wait for its first cycle",
    )
    g.add_argument("--no-logs", action="store_true", help="do not read provisioning logs")
    g.add_argument(
        "--monitor-deadline",
        type=float,
        default=900.0,
        help="Graph seconds a started job may take to reach steady state "
        "(default %(default)s)",
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


def cmd_mock_graph(args: argparse.Namespace) -> int:
    from .mockgraph.server import MockGraph, write_info, write_profiles

    settings = mock_settings_from_args(args)

    async def serve() -> None:
        state_dir = args.state_dir
        async with MockGraph(
            settings, host=args.host, port=args.port, http_port=args.http_port, state_dir=state_dir
        ) as mock:
            info = mock.info
            assert info is not None
            if args.info_file is not None:
                write_info(args.info_file, info)
            if args.profiles_file is not None:
                write_profiles(args.profiles_file, info)
            print("bulkprov mock Graph is serving", flush=True)
            print(f"  Graph base URL   {info.graph_url}/v1.0  (and /beta)")
            if info.http_url:
                print(f"  plain HTTP       {info.http_url}/v1.0")
            print(f"  authority        {info.authority}")
            print(f"  CA file          {info.ca_file}")
            print(f"  tenant id        {info.tenant_id}")
            if len(info.tenant_ids) > 1:
                print(f"  other tenants    {', '.join(info.tenant_ids[1:])}")
            print(f"  client id        {info.client_id}  (also a public client: device code)")
            if info.users:
                print(f"  signs in         {info.users[0]}  (device code, approved by the mock)")
            if args.profiles_file is not None:
                names = ", ".join(
                    f"tenant{n}, tenant{n}-device" for n in range(1, len(info.tenant_ids) + 1)
                )
                print(f"  profiles         {args.profiles_file} ({names})")
            if args.info_file is not None or args.profiles_file is not None:
                where = args.info_file or f"{args.profiles_file}.secret"
                print(f"  client secret    in {where}")
            else:
                print(f"  client secret    {info.client_secret}")
            print(f"  time scale       {info.time_scale} real s per Graph s")
            print(f"  stats            {info.graph_url}/_mock/stats", flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .commands import cmd_run as run

    return run(args)


def cmd_plan(args: argparse.Namespace) -> int:
    from .commands import cmd_plan as plan

    return plan(args)


def cmd_export(args: argparse.Namespace) -> int:
    from .commands import cmd_export as export

    return export(args)


def cmd_status(args: argparse.Namespace) -> int:
    from .commands import cmd_status as status

    return status(args)


def cmd_cleanup(args: argparse.Namespace) -> int:
    from .day2 import cmd_cleanup as cleanup

    return cleanup(args)


def cmd_monitor(args: argparse.Namespace) -> int:
    from .day2 import cmd_monitor as monitor

    return monitor(args)


def cmd_templates(args: argparse.Namespace) -> int:
    from .templates import cmd_templates as templates

    return templates(args)


def main(argv: Sequence[str] | None = None) -> int:
    small_tls_read_buffers()  # process-wide, once: every TLS connection reads one record
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except BaseException as exc:  # every way out gets its message and exit code
        return report_error(exc, verbose=int(getattr(args, "verbose", 0) or 0))
    return code


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, in order."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def report_error(exc: BaseException, *, verbose: int = 0) -> int:
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
        return 130
    seen: set[str] = set()
    code = 2
    for e in leaves:
        if isinstance(e, BulkProvError):
            text = f"bulkprov: error: {e}"
        else:
            code = 1
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
