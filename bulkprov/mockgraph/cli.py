"""The mock on the command line: the ``bulkprov mock-graph`` command, the options that shape a
mock (on ``mock-graph`` and on the commands that take ``--mock``), and :func:`embedded_mock`,
the one door through which ``--mock`` reaches a mock.

bulkprov's own command line imports this module only when a command that has these options is
parsed, and the mock's server only when one is started: ``bulkprov --help`` and a command
without ``--mock`` load no more of the mock than this module and its settings."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from ..errors import ConfigError
from ..exitcodes import ExitCode
from .settings import (
    RETRY_AFTER_MODES,
    THROTTLE_SCOPES,
    FaultSettings,
    LatencySettings,
    MockSettings,
    ReplicationSettings,
    ThrottleSettings,
)

if TYPE_CHECKING:
    from .server import MockInfo

#: The Graph a ledger of the embedded mock's kept tenant records (its URL has a random port).
MOCK_GRAPH = "mock:embedded"

DESCRIPTION = (
    "Serve a mock Microsoft Graph (HTTPS, with its own CA) with Graph's quotas, 429s, "
    "latency, replication delays and faults, and an OAuth2 token endpoint that MSAL accepts. "
    "Prints what a client needs to connect."
)


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


# ---------------------------------------------------------------------- the mock's options
def add_mock_options(p: argparse.ArgumentParser) -> None:
    """The options that shape a mock Graph (shared by ``mock-graph`` and the ``--mock`` of
    ``run``, ``plan``, ``export``, ``monitor``, ``cleanup`` and ``templates``)."""
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
        "--tenants",
        type=int,
        default=1,
        dest="mock_tenants",  # not `tenants`: the --tenant PROFILE of run and the readers
        metavar="N",
        help="number of tenants served (default %(default)s)",
    )
    g.add_argument(
        "--tenant-size",
        choices=("small", "medium", "large"),
        default="small",
        help="sizes the resource-unit quota: 3,500 / 5,000 / 8,000 RU per 10 s "
        "(default %(default)s)",
    )
    g.add_argument("--no-throttle", action="store_true", help="switch throttling off")
    _add_throttle_options(g)
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
    _add_fault_options(g)
    g.add_argument(
        "--token-lifetime",
        type=_positive_float,
        default=3599.0,
        help="access token lifetime in real seconds (default %(default)s)",
    )


def _add_throttle_options(g: argparse._ArgumentGroup) -> None:
    """A Graph less tidy than its documented quotas (see ThrottleSettings)."""
    d = ThrottleSettings()
    for flag, kind, default, text in (
        ("--write-limit", int, d.write_limit, "writes per --write-window per app + tenant"),
        ("--write-window", _positive_float, d.write_window, "Graph seconds of --write-limit"),
        (
            "--other-app-write-rate",
            float,
            d.other_app_write_rate,
            "another app's writes per Graph second from the tenant's write budget (0: none)",
        ),
        ("--other-app-period", float, d.other_app_period, "Graph seconds of the other app's cycle"),
        (
            "--other-app-duty",
            float,
            d.other_app_duty,
            "share of each cycle the other app writes in (1: steadily)",
        ),
        (
            "--shed-factor",
            float,
            d.shed_factor,
            "load shedding: the shed scopes' limit times this (1: none)",
        ),
        ("--shed-start", float, d.shed_start, "Graph seconds after start that shedding begins"),
        ("--shed-duration", float, d.shed_duration, "Graph seconds that shedding lasts"),
        (
            "--retry-after-value",
            float,
            d.retry_after_value,
            "the Retry-After of --retry-after fixed, Graph seconds",
        ),
        (
            "--retry-after-factor",
            float,
            d.retry_after_factor,
            "Graph's Retry-After times this, for --retry-after scaled",
        ),
    ):
        g.add_argument(flag, type=kind, default=default, help=f"{text} (default %(default)s)")
    g.add_argument(
        "--shed-scopes",
        default=",".join(d.shed_scopes),
        help=f"comma-separated scopes shed, of {', '.join(THROTTLE_SCOPES)} (default %(default)s)",
    )
    g.add_argument(
        "--start-empty", action="store_true", help="every bucket starts empty (no burst)"
    )
    g.add_argument(
        "--retry-after",
        choices=RETRY_AFTER_MODES,
        default=d.retry_after,
        help="a 429's Retry-After: Graph's, fixed, Graph's scaled, or none (default %(default)s)",
    )


def _throttle_from_args(args: argparse.Namespace) -> ThrottleSettings:
    try:
        return ThrottleSettings(
            enabled=not args.no_throttle,
            tenant_size=args.tenant_size,
            write_limit=args.write_limit,
            write_window=args.write_window,
            other_app_write_rate=args.other_app_write_rate,
            other_app_period=args.other_app_period,
            other_app_duty=args.other_app_duty,
            shed_factor=args.shed_factor,
            shed_scopes=tuple(s.strip() for s in args.shed_scopes.split(",") if s.strip()),
            shed_start=args.shed_start,
            shed_duration=args.shed_duration,
            start_full=not args.start_empty,
            retry_after=args.retry_after,
            retry_after_value=args.retry_after_value,
            retry_after_factor=args.retry_after_factor,
        )
    except ValueError as exc:
        raise ConfigError(f"mock throttle options: {exc}") from None


def _add_fault_options(g: argparse._ArgumentGroup) -> None:
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


def mock_settings_from_args(
    args: argparse.Namespace, *, default_time_scale: float = 1.0
) -> MockSettings:
    """The :class:`MockSettings` that the options of :func:`add_mock_options` give."""
    replication = ReplicationSettings(enabled=not args.no_replication)
    if args.replication_max is not None:
        replication = ReplicationSettings(
            enabled=not args.no_replication,
            min_delay=min(replication.min_delay, args.replication_max),
            max_delay=args.replication_max,
        )
    return MockSettings(
        time_scale=args.time_scale if args.time_scale is not None else default_time_scale,
        tenants=args.mock_tenants,
        throttle=_throttle_from_args(args),
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


# ---------------------------------------------------------------------- bulkprov mock-graph
def configure_parser(p: argparse.ArgumentParser) -> None:
    """Make ``p`` the parser of ``bulkprov mock-graph``."""
    p.description = DESCRIPTION
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    p.add_argument(
        "--port", type=int, default=8443, help="HTTPS port, 0: any free port (default %(default)s)"
    )
    p.add_argument(
        "--http-port", type=int, default=None, help="also serve plain HTTP on this port (for curl)"
    )
    p.add_argument(
        "--info-file",
        type=Path,
        default=None,
        help="write the connection details (JSON, mode 600) to this file",
    )
    p.add_argument(
        "--profiles-file",
        type=Path,
        default=None,
        help="write a profiles file (TOML, mode 600) with two profiles per tenant: tenantN "
        "(app-only, client secret in FILE.secret) and tenantN-device (device code, delegated)",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where the TLS CA and certificate are written (default: a temp dir)",
    )
    add_mock_options(p)
    p.set_defaults(func=cmd_mock_graph)


def cmd_mock_graph(args: argparse.Namespace) -> int:
    from .server import MockGraph, write_info, write_profiles

    settings = mock_settings_from_args(args)

    async def serve() -> None:
        async with MockGraph(
            settings,
            host=args.host,
            port=args.port,
            http_port=args.http_port,
            state_dir=args.state_dir,
        ) as mock:
            info = mock.info
            assert info is not None
            if args.profiles_file is not None:
                write_profiles(args.profiles_file, info)
            if args.info_file is not None:  # last: whoever waits for it finds everything ready
                write_info(args.info_file, info)
            _print_serving(args, info)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return ExitCode.OK


def _print_serving(args: argparse.Namespace, info: MockInfo) -> None:
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


# ---------------------------------------------------------------------- --mock
@dataclass(frozen=True, slots=True)
class Embedded:
    """A running embedded mock, as a command's connection needs it."""

    info: MockInfo
    keep: Path | None  # where its tenant is kept (beside the command's ledger), if anywhere

    @property
    def ledger_graph(self) -> str | None:
        """The Graph a ledger records for it: :data:`MOCK_GRAPH` for a kept tenant (its URL
        changes from one command to the next), else None (its base URL)."""
        return MOCK_GRAPH if self.keep is not None else None


@contextlib.asynccontextmanager
async def embedded_mock(
    settings: MockSettings, *, ledger: Path | None = None, create: bool = False
) -> AsyncIterator[Embedded]:
    """An embedded mock that lives as long as the block (``--mock``).

    Given the ``ledger`` of the command, it serves the tenant kept beside it
    (``runs/x.jsonl`` -> ``runs/x.mock/``, see :mod:`.persist`) and saves it there; ``create``
    (``run``) makes a new one when neither the ledger nor the tenant exists yet."""
    from . import persist
    from .server import MockGraph

    keep = None
    if ledger is not None:
        keep = persist.beside(ledger)
        if not persist.exists(keep):
            _no_kept_tenant(ledger, keep, create=create)
    try:
        mock = MockGraph(settings, keep=keep, create=create)
    except persist.KeepError as exc:
        raise ConfigError(str(exc)) from None
    try:
        async with mock:
            assert mock.info is not None
            yield Embedded(mock.info, keep)
    except persist.KeepError as exc:  # the last save failed (a full disk)
        raise ConfigError(str(exc)) from None


def _no_kept_tenant(ledger: Path, keep: Path, *, create: bool) -> None:
    """Refuse a ``--mock`` ledger whose kept tenant is missing (nothing it records can be
    reached), unless ``create`` and there is no ledger yet either."""
    written = _ledger_graph(ledger)
    if written is not None and written != MOCK_GRAPH:
        raise ConfigError(
            f"{ledger} records a run against {written}, not a tenant the embedded mock "
            "kept: connect to that Graph without --mock (a ledger of a --mock run from "
            "before tenants were kept has none: start a new demo)"
        )
    if written is not None or not create:
        raise ConfigError(
            f"the mock tenant of {ledger} is gone: {keep} is missing (deleted?), and "
            "with it everything the ledger records; start a new demo with `bulkprov run "
            "MANIFEST --mock` (a new ledger)"
        )


def _ledger_graph(ledger: Path) -> str | None:
    """The Graph a ledger's header records, or None when there is no ledger (yet)."""
    try:
        with ledger.open("rb") as fh:
            first = fh.readline()
    except OSError:
        return None
    try:
        header = orjson.loads(first)
    except orjson.JSONDecodeError:
        return None  # torn or not a ledger: the ledger itself will say so
    graph = header.get("graph") if isinstance(header, dict) else None
    return str(graph) if graph is not None else None
