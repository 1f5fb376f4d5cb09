"""``bulkprov templates``: the gallery templates a search finds and the credential keys
they ask for (:mod:`bulkprov.templates`), as a table or JSON."""

from __future__ import annotations

import argparse
import sys

import anyio
import orjson
from rich.console import Console
from rich.table import Table

from ..cliconnect import connection_options
from ..client import GraphClient
from ..connect import client_settings, target
from ..display import cell, printable
from ..exitcodes import ExitCode
from ..graph import Graph
from ..log import configure
from ..templates import NO_INSTANCE, WHY_UNKNOWN, TemplateInfo, lookup


def keys_text(info: TemplateInfo) -> str:
    if info.keys is None:
        return info.keys_note or ""
    lines = []
    for s in info.keys:
        keys = ", ".join(k.key + (" (secret)" if k.secret else "") for k in s.keys) or "none"
        lines.append(keys if len(info.keys) == 1 else f"{s.sync_template}: {keys}")
    return "\n".join(lines)


def cmd_templates(args: argparse.Namespace) -> int:
    configure(console_level="warning")
    opts = connection_options(args)

    async def main() -> list[TemplateInfo]:
        async with (
            target(opts) as tgt,
            GraphClient(tgt.conn, client_settings(opts, tgt.time_scale)) as client,
        ):
            return await lookup(
                Graph(client), args.search, keys=args.keys, provisioning_only=args.provisioning
            )

    infos = anyio.run(main)
    if args.json:
        body = {
            "search": args.search,
            "count": len(infos),
            "templates": [i.as_json() for i in infos],
        }
        sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
        return ExitCode.OK if infos else ExitCode.NONE_FOUND
    console = Console(highlight=False)
    what = f" whose name contains '{printable(args.search)}'" if args.search else ""
    if not infos:
        console.print(f"no gallery application template{what}", markup=False)
        return ExitCode.NONE_FOUND
    with_keys = any(i.keys is not None or i.keys_note for i in infos)
    if len(infos) == 1:
        _print_one(console, infos[0])
    else:
        _print_table(console, infos, what, with_keys)
    if with_keys:
        console.print(
            "credential keys are a manifest's cred.<key> columns (CSV) or credentials "
            "object (JSON); (secret): give it as env:VAR or file:PATH, the others take a "
            "plain value",
            markup=False,
        )
    if any(i.keys_note == NO_INSTANCE for i in infos):
        console.print(WHY_UNKNOWN, markup=False)
    return ExitCode.OK


def _print_one(console: Console, i: TemplateInfo) -> None:
    table = Table(title=None, show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_row("template", cell(i.display_name))
    table.add_row("id", cell(i.id))
    table.add_row("publisher", cell(i.publisher))
    types = ", ".join(i.provisioning_types) or "none"
    table.add_row("provisioning", cell(f"{'yes' if i.provisioning else 'no'} ({types})"))
    table.add_row("credential keys", cell(keys_text(i), keep_newlines=True))
    if i.source:
        table.add_row("read from", cell(f"service principal {i.source}"))
    console.print(table)


def _print_table(console: Console, infos: list[TemplateInfo], what: str, with_keys: bool) -> None:
    table = Table(title=f"{len(infos)} gallery application template(s){what}")
    table.add_column("id", no_wrap=True)
    for col in ("display name", "publisher", "provisioning"):
        table.add_column(col, overflow="fold")
    if with_keys:
        table.add_column("credential keys", overflow="fold")
    for i in infos:
        row = [cell(i.id), cell(i.display_name), cell(i.publisher)]
        row.append(cell("yes" if i.provisioning else "no"))
        if with_keys:
            row.append(cell(keys_text(i), keep_newlines=True))
        table.add_row(*row)
    console.print(table)
