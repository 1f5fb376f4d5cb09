"""The ``report`` command: read the ledgers, with ``--live`` each job's state now (the reads of
``bulkprov monitor``), and write the page."""

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
    report = read(args.ledger)
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
