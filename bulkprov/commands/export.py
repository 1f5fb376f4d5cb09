"""``bulkprov export``: a tenant's provisioning set-up written as a manifest
(:mod:`bulkprov.export`), with a progress line while the jobs are read."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import anyio

from ..cliconnect import connection_options
from ..client import GraphClient
from ..connect import client_settings, target
from ..display import printable
from ..errors import ConfigError
from ..exitcodes import ExitCode
from ..graph import Graph
from ..log import configure
from ..progress import TaskProgress
from .common import stderr_console


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import ExportFilter, export, read_ids_file

    configure(console_level="warning")
    console = stderr_console()
    opts = connection_options(args)
    out: Path = args.out
    if (out / "manifest.json").exists() and not args.force:
        raise ConfigError(f"{out / 'manifest.json'} exists; pass --force to overwrite it")
    flt = ExportFilter(
        template=args.template,
        name=args.name,
        ids=read_ids_file(args.ids_file) if args.ids_file else None,
    )

    async def main() -> Any:
        async with (
            target(opts) as tgt,
            GraphClient(tgt.conn, client_settings(opts, tgt.time_scale)) as client,
        ):
            source = f"tenant {tgt.conn.tenant_id} ({tgt.label})"
            progress = TaskProgress(
                "export",
                "service principals read",
                console,
                pending="listing service principals",
                interval=args.progress_every,
            )
            with progress:
                return await export(
                    Graph(client), out, flt, source=source, on_progress=progress.update
                )

    result = anyio.run(main)
    console.print(
        f"bulkprov: exported {len(result.instances)} instances "
        f"({result.scanned} gallery service principals matched) to {result.manifest}"
    )
    for name, why in result.skipped:
        console.print(f"  note: {printable(name)}: {printable(why)}", markup=False)
    if result.variables:
        console.print(
            f"  {len(result.variables)} secret references to fill in: see {out / 'secrets.env'} "
            "(plan and run refuse the manifest until every variable is set)"
        )
    return ExitCode.OK
