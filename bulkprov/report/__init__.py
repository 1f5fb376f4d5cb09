"""``bulkprov report``: a run and its fleet as one self-contained HTML page.

Only the command's arguments live here: the parser is built for every command, and nothing of
the report (its model, its rendering, monitor's reads) is imported until it runs
(:mod:`.command`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = (
    "Write one self-contained HTML page (no request to any other host when opened; "
    "printable) of what LEDGER records: a headline (done, quarantined, failed, not yet done, "
    "wall time), the instances finished over time against Graph's write quota, the time each "
    "step took across instances, a sortable and filterable table of every instance that "
    "needs attention (step, reason, Graph request id, quarantine, manifest line), and the "
    "breakdowns per template and per tenant (the worst tenants first). Several ledgers (one "
    "per tenant) make one report, as does the ledger of a run across many tenants; --tenant "
    "PROFILE limits it to that profile's instances. --live adds each job's state now, read as "
    "`bulkprov monitor` reads it (connects like monitor; a run across many tenants: to each "
    "profile's tenant, as run did). Exit codes: 0 written, 2 bad input or a Graph that cannot "
    "be reached."
)


def configure_parser(p: argparse.ArgumentParser) -> None:
    """Add the ``report`` command's own options to ``p`` (the caller adds the connection
    options ``--live`` uses, as for ``monitor``, and sets its ``func``)."""
    p.description = DESCRIPTION
    p.add_argument("ledger", type=Path, nargs="+", help="the JSONL ledger(s) a run wrote")
    p.add_argument("--out", type=Path, required=True, help="the HTML file to write (mode 600)")
    p.add_argument(
        "--live",
        action="store_true",
        help="also read each job's state now (as `monitor` does; needs a connection)",
    )
    p.add_argument(
        "--manifest",
        type=Path,
        default=None,
        help="the manifest, for each instance's line (default: the one the ledger names, "
        "looked for as named, beside the ledger and one directory up)",
    )
    p.add_argument(
        "--summary-json",
        type=Path,
        action="append",
        default=None,
        metavar="FILE",
        help="a summary `run --summary-json` wrote: shows requests and 429s (repeatable)",
    )
    p.add_argument(
        "--write-quota",
        default=None,
        metavar="N/SECONDS",
        help="the write quota of the race plot's bound (default Graph's 3000/150); its time "
        "scale is --time-scale (default 1 for Graph, 0.02 for a --mock ledger, with --live "
        "a mock's own)",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging")


def cmd_report(args: argparse.Namespace) -> int:
    from .command import cmd_report as run

    return run(args)
