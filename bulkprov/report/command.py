"""The ``report`` command: read the ledgers, with ``--live`` each job's state now (the reads of
``bulkprov monitor``), and write the page.

``--live`` with the ledger of a run across many tenants connects to each profile's tenant
(as ``run`` did: the profiles file, or the embedded mock's tenants with ``--mock``) and reads
the jobs of that profile's instances there; it takes that ledger alone."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..files import check_writable, write_atomic
from ..log import configure
from ..redact import Redactor
from ..settings import Quota
from .model import Instance, Report, attach_lines, attach_live, read, read_client_totals
from .render import ChartSettings, render

MOCK_TIME_SCALE = 0.02  # the embedded mock's (--mock) default
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


async def read_live(args: argparse.Namespace, report: Report, redactor: Redactor) -> float:
    """Each job's state now, read as ``monitor`` reads it, into ``report``; gives the
    Graph's time scale. A token is fetched first: an authority or Graph that cannot be reached
    stops the command with one line."""
    from .. import ledger as ledger_mod
    from ..cliconnect import connection_options
    from ..client import GraphClient
    from ..connect import client_settings, target
    from ..graph import Graph
    from ..monitor import Monitor, MonitorSettings

    if report.many_tenants:
        return await read_live_tenants(args, report, redactor)
    if len(report.tenants) > 1:
        raise ConfigError(
            "--live reads one tenant's jobs: give the ledgers of one tenant, or leave --live "
            "out for a report of several tenants"
        )
    opts = connection_options(args)
    async with (
        target(opts, ledger=report.ledgers[0].path) as tgt,
        GraphClient(tgt.conn, client_settings(opts, tgt.time_scale)) as client,
    ):
        secret = tgt.conn.credential.client_secret
        if secret:
            redactor.add(secret)  # never in an error message on the page either
        await client.tokens.token()  # an authority that cannot be reached: say so first
        for m in report.ledgers:
            ledger_mod.check_target(
                m.path, m.replay.header, graph=tgt.ledger_graph, tenant=client.conn.tenant_id
            )
        graph = Graph(client)
        for index, m in enumerate(report.ledgers):
            rows = await Monitor(graph, m.replay, MonitorSettings()).run()
            attach_live(report, index, rows, _now())
        return tgt.time_scale


async def read_live_tenants(args: argparse.Namespace, report: Report, redactor: Redactor) -> float:
    """:func:`read_live` for the ledger of a run across many tenants: each profile shown is
    connected to and checked as ``monitor`` does it (:func:`bulkprov.commands.tenants
    .connections`), and its instances' jobs read there, the tenants at once. Gives the first
    tenant's time scale."""
    from ..cliconnect import connection_options
    from ..commands.tenants import connections
    from ..monitor import MonitorSettings, monitor_tenants

    if len(report.ledgers) > 1:
        raise ConfigError(
            "--live reads the jobs of one ledger of a run across many tenants: give that "
            "ledger alone, or leave --live out"
        )
    m = report.ledgers[0]
    opts = connection_options(args)
    async with connections(opts, m.path, m.replay, sorted(m.profiles)) as conns:
        for c in conns.items:
            secret = c.target.conn.credential.client_secret
            if secret:
                redactor.add(secret)  # never in an error message on the page either
        rows, _monitors = await monitor_tenants(conns.graphs(), m.replay, MonitorSettings())
        attach_live(report, 0, rows, _now())
        return conns.first.target.time_scale


def chart_settings(
    args: argparse.Namespace, report: Report, live_scale: float | None
) -> ChartSettings:
    """The quota line's quota and time scale: given, else the one --live connected to, else
    the embedded mock's default for a --mock ledger, else Graph's (1)."""
    quota = Quota.parse(args.write_quota) if args.write_quota else Quota(limit=3000, window=150)
    given = getattr(args, "time_scale", None)
    graphs = {str(m.header.get("graph")) for m in report.ledgers}
    if given:
        scale, source = float(given), "--time-scale"
    elif live_scale is not None:
        scale, source = live_scale, "the Graph --live read"
    elif graphs == {"mock:embedded"}:
        scale, source = MOCK_TIME_SCALE, "the --mock default; --time-scale to change"
    else:
        scale, source = 1.0, "Graph's own; --time-scale for a mock"
        if any(urlsplit(g).hostname in LOCAL_HOSTS for g in graphs):
            report.notes.append(
                "The ledger's Graph is on this machine (a mock?): the quota line assumes "
                "real time; give the mock's --time-scale to draw it at the mock's pace."
            )
    return ChartSettings(
        write_limit=quota.limit,
        write_window=quota.window,
        time_scale=scale,
        time_scale_source=source,
    )


def cmd_report(args: argparse.Namespace) -> int:
    import anyio

    configure(console_level=("warning", "info", "debug")[min(args.verbose, 2)])
    check_writable(args.out, "--out")
    _not_an_input(args)
    report = read(args.ledger, getattr(args, "only_tenants", None))
    attach_lines(report, args.manifest)
    report.client = read_client_totals(args.summary_json or ())
    redactor = Redactor()
    live_scale = anyio.run(read_live, args, report, redactor) if args.live else None
    settings = chart_settings(args, report, live_scale)
    page = render(report, redactor=redactor, settings=settings, generated=_now())
    try:
        write_atomic(args.out, page.encode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot write --out {args.out}: {exc.strerror}") from None
    attention = sum(1 for i in report.instances if _needs_attention(i))
    print(
        f"bulkprov: report of {len(report.instances):,} instances "
        f"({attention:,} needing attention) written to {args.out}",
        file=sys.stderr,
    )
    return 0


def _not_an_input(args: argparse.Namespace) -> None:
    """Refuse an --out that would overwrite a ledger, the manifest or a run summary."""
    out = args.out.resolve()
    inputs = [*args.ledger, *(args.summary_json or ()), *([args.manifest] if args.manifest else [])]
    for path in inputs:
        if path.resolve() == out:
            raise ConfigError(f"--out {args.out} is an input of the report: give another file")


def _needs_attention(i: Instance) -> bool:
    from .tables import attention_kind

    return attention_kind(i) is not None
