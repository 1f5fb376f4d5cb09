"""The ``bulkprov`` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

from .mockgraph.settings import (
    FaultSettings,
    LatencySettings,
    MockSettings,
    ReplicationSettings,
    ThrottleSettings,
)


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _rate(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def add_mock_options(p: argparse.ArgumentParser) -> None:
    """The options that shape a mock Graph (shared by ``mock-graph`` and ``run --mock``)."""
    g = p.add_argument_group("mock Graph behaviour (defaults: Graph's published figures)")
    g.add_argument("--time-scale", type=_positive_float, default=None,
                   help="real seconds per Graph second: 0.01 runs latency, quotas, Retry-After, "
                        "replication and job cycles 100x faster (default 1.0)")
    g.add_argument("--seed", type=int, default=1406, help="seed of the injected faults")
    g.add_argument("--tenants", type=int, default=1, help="number of tenants served")
    g.add_argument("--tenant-size", choices=("small", "medium", "large"), default="small",
                   help="sizes the resource-unit quota: 3,500 / 5,000 / 8,000 RU per 10 s")
    g.add_argument("--no-throttle", action="store_true", help="switch throttling off")
    g.add_argument("--no-latency", action="store_true", help="answer without service time")
    g.add_argument("--no-replication", action="store_true",
                   help="new objects read back at once (no replication delay)")
    g.add_argument("--replication-max", type=float, default=None,
                   help="longest replication delay of a new object, Graph seconds (default 12)")
    g.add_argument("--fault-rate", type=_rate, default=0.0,
                   help="probability that any request answers 500/502/503/504")
    g.add_argument("--drop-rate", type=_rate, default=0.0,
                   help="probability that any request's connection is dropped")
    g.add_argument("--instantiate-404-rate", type=_rate, default=0.0,
                   help="instantiate creates the objects but answers 404")
    g.add_argument("--instantiate-timeout-rate", type=_rate, default=0.0,
                   help="instantiate creates the objects but answers only after the timeout")
    g.add_argument("--token-lifetime", type=_positive_float, default=3599.0,
                   help="access token lifetime in real seconds")


def mock_settings_from_args(args: argparse.Namespace, *, default_time_scale: float = 1.0
                            ) -> MockSettings:
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
    parser = argparse.ArgumentParser(
        prog="bulkprov",
        description="Configure Microsoft Entra app provisioning for many gallery apps at once "
                    "through Microsoft Graph.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    mock = sub.add_parser(
        "mock-graph",
        help="serve the embedded mock Microsoft Graph",
        description="Serve a mock Microsoft Graph (HTTPS, with its own CA) with Graph's quotas, "
                    "429s, latency, replication delays and faults, and an OAuth2 token endpoint "
                    "that MSAL accepts. Prints what a client needs to connect.",
    )
    mock.add_argument("--host", default="127.0.0.1", help="address to listen on")
    mock.add_argument("--port", type=int, default=8443, help="HTTPS port (0: any free port)")
    mock.add_argument("--http-port", type=int, default=None,
                      help="also serve plain HTTP on this port (for curl)")
    mock.add_argument("--info-file", type=Path, default=None,
                      help="write the connection details (JSON, mode 600) to this file")
    mock.add_argument("--state-dir", type=Path, default=None,
                      help="where the TLS CA and certificate are written (default: a temp dir)")
    add_mock_options(mock)
    mock.set_defaults(func=cmd_mock_graph)
    return parser


def cmd_mock_graph(args: argparse.Namespace) -> int:
    from .mockgraph.server import MockGraph

    settings = mock_settings_from_args(args)

    async def serve() -> None:
        state_dir = args.state_dir
        async with MockGraph(settings, host=args.host, port=args.port,
                             http_port=args.http_port, state_dir=state_dir) as mock:
            info = mock.info
            assert info is not None
            if args.info_file is not None:
                args.info_file.parent.mkdir(parents=True, exist_ok=True)
                args.info_file.touch(mode=0o600)
                args.info_file.chmod(0o600)
                args.info_file.write_bytes(info.to_json())
            print("bulkprov mock Graph is serving", flush=True)
            print(f"  Graph base URL   {info.graph_url}/v1.0  (and /beta)")
            if info.http_url:
                print(f"  plain HTTP       {info.http_url}/v1.0")
            print(f"  authority        {info.authority}")
            print(f"  CA file          {info.ca_file}")
            print(f"  tenant id        {info.tenant_id}")
            if len(info.tenant_ids) > 1:
                print(f"  other tenants    {', '.join(info.tenant_ids[1:])}")
            print(f"  client id        {info.client_id}")
            if args.info_file is not None:
                print(f"  client secret    in {args.info_file} (client_secret)")
            else:
                print(f"  client secret    {info.client_secret}")
            print(f"  time scale       {info.time_scale} real s per Graph s")
            print(f"  stats            {info.graph_url}/_mock/stats", flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
