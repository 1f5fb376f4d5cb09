"""How the day-2 commands (``monitor``, ``cleanup``, ``drift``) connect to a ledger's Graph.

A ledger of one tenant is worked on with one connection (flags, profile, mock info or the
embedded mock), checked against its header (:func:`bulkprov.tenancy.check_target`). A ledger
of a run across many tenants is worked on with one connection per profile it records (all,
or those of ``--tenant``): each from the profiles file, or with ``--mock`` one tenant each of
the embedded mock the ledger keeps (the tenant the ledger records for the profile). Each is
checked against the tenant and Graph the ledger records for its profile
(:func:`bulkprov.tenancy.check_tenants`), and each instance is then worked on with the
connection of its profile. The clients share one :class:`ClientStats`, as a run's do, so
that the summary counts the requests of all of them, and the app's limits across tenants
(:func:`bulkprov.connect.tenant_clients`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from ..client import ClientStats, GraphClient
from ..connect import (
    ConnectionOptions,
    Target,
    client_settings,
    target,
    targets_label,
    tenant_clients,
    tenant_targets,
)
from ..graph import Graph
from ..ledger import Replay
from ..tenancy import TenantRef, check_target, check_tenants, selected


@dataclass(frozen=True, slots=True)
class Connection:
    """One tenant a command works on: its profile (None: the ledger is one tenant's), where
    it connects, and the client and Graph for its instances."""

    profile: str | None
    target: Target
    client: GraphClient
    graph: Graph

    @property
    def tenant(self) -> str:
        return self.client.conn.tenant_id

    @property
    def ref(self) -> TenantRef:
        assert self.profile is not None
        return TenantRef(self.profile, self.target.ledger_graph, self.tenant)


@dataclass(frozen=True, slots=True)
class Connections:
    """The tenants a command works on, in profile order."""

    items: tuple[Connection, ...]
    multi: bool  # the ledger is of a run across many tenants
    stats: ClientStats

    @property
    def profiles(self) -> list[str]:
        return [str(c.profile) for c in self.items] if self.multi else []

    def graphs(self) -> dict[str | None, Graph]:
        """profile -> the Graph its instances are worked on with (``None`` for a ledger of
        one tenant)."""
        return {c.profile: c.graph for c in self.items}

    @property
    def first(self) -> Connection:
        return self.items[0]

    @property
    def label(self) -> str:
        """What a command's first line says it connects to."""
        return targets_label([(c.profile, c.target) for c in self.items])

    def ledger_target(self) -> dict[str, Any]:
        """The ``graph``, ``tenant`` and ``tenants`` to open the ledger for writing with
        (:meth:`bulkprov.ledger.Ledger.prepare`): for a run across many tenants, each
        connection's, which the ledger checks again under its lock."""
        graphs = {c.target.ledger_graph for c in self.items}
        return {
            "graph": graphs.pop() if len(graphs) == 1 else "",
            "tenant": self.first.tenant,
            "tenants": {c.ref.profile: c.ref for c in self.items} if self.multi else None,
        }


def is_multi(replay: Replay) -> bool:
    """Whether a ledger is of a run across many tenants."""
    return replay.header is not None and replay.header.tenants is not None


@contextlib.asynccontextmanager
async def connections(
    opts: ConnectionOptions, path: Path, replay: Replay, only: Sequence[str] | None
) -> AsyncIterator[Connections]:
    """Connect to the tenants of the ledger at ``path`` (``only``: the profiles of
    ``--tenant``), check each against the ledger, and get each a token (an authority that
    cannot be reached is said before anything else happens)."""
    if not is_multi(replay):
        selected(path, {}, only)  # --tenant on a ledger of one tenant: refused
        async with (
            target(opts, ledger=path) as tgt,
            GraphClient(tgt.conn, client_settings(opts, tgt.time_scale)) as client,
        ):
            await client.tokens.token()
            check_target(path, replay.header, graph=tgt.ledger_graph, tenant=client.conn.tenant_id)
            one = Connection(None, tgt, client, Graph(client))
            yield Connections((one,), False, client.stats)
        return
    profiles = selected(path, replay.tenants, only)
    # (the embedded mock keeps each profile on the tenant the ledger records for it)
    async with (
        tenant_targets(opts, profiles, ledger=path) as targets,
        tenant_clients(opts, [t for _p, t in targets]) as clients,
    ):
        items = [
            Connection(profile, tgt, client, Graph(client))
            for (profile, tgt), client in zip(targets, clients, strict=True)
        ]
        check_tenants(path, replay.header, replay.tenants, {c.ref.profile: c.ref for c in items})
        async with anyio.create_task_group() as tg:
            for c in items:
                tg.start_soon(c.client.tokens.token)
        yield Connections(tuple(items), True, clients[0].stats)
